// Standalone build of `rill bench`, so the benchmark suite runs without the rill command.
#include "loadgen/bench_command.hpp"

int main(int argc, char** argv) { return bench_command(argc, argv); }
