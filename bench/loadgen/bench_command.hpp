#pragma once

// `rill bench`: the load generator of the benchmark suite (bench/run.sh).
//
// argv[0] is the command's own name (ignored), argv[1] the scenario (pingpong, pipeline, churn,
// idle), then options; `rill bench --help` lists them. It depends on nothing in the rill library,
// so it measures rill and the peer servers in bench/peers on equal terms.
//
// Returns 0 when every echoed byte matched and no connection failed, 1 when a mismatch or a
// connection error was seen (the measurement is still printed), 2 on a usage or setup error.
int bench_command(int argc, char** argv);
