// Everything rill offers: tasks, channels, addresses, TCP streams, stream operations and
// transcoders, and the counters of what a server rode out.
#pragma once

#include <rill/address.hpp>
#include <rill/channel.hpp>
#include <rill/error.hpp>
#include <rill/runtime.hpp>
#include <rill/stats.hpp>
#include <rill/stream.hpp>
#include <rill/tcp.hpp>
#include <rill/tls.hpp>
#include <rill/transcoder.hpp>
