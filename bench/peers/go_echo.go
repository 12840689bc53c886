// Line echo in Go as Go servers are written: net.Listen, a goroutine per connection, bufio.
//
// usage: go_echo [PORT | --port N] [--mode once|persistent]
//
//	once:       read one line, echo it, close (the seed's server)
//	persistent: echo every line until end of stream (the default)
//
// Listens on 127.0.0.1; each line is echoed with its "\n". The runtime already sets
// TCP_NODELAY, raises the descriptor limit (Go 1.19+) and sizes GOMAXPROCS from the CPU
// affinity, so under `taskset -c 1` this is one P, like the other servers.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

func echo(conn net.Conn, once bool) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	for {
		// ReadSlice returns a view into r's buffer: no allocation per line. A line longer than
		// the buffer comes in pieces (ErrBufferFull), each echoed as it is.
		line, err := r.ReadSlice('\n')
		w.Write(line)
		switch {
		case err == io.EOF && len(line) > 0:
			w.WriteByte('\n') // a last line without "\n" is still a line
			w.Flush()
			return
		case err != nil && err != bufio.ErrBufferFull:
			w.Flush()
			return
		case err == nil && once:
			w.Flush()
			return
		}
		// Flush only when no further request is already buffered: pipelined lines share a write.
		if r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}

func main() {
	port, once := 2020, false
	usage := func() {
		fmt.Fprintf(os.Stderr, "usage: %s [PORT | --port N] [--mode once|persistent]\n", os.Args[0])
		os.Exit(2)
	}
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--port" && i+1 < len(args):
			i++
			p, err := strconv.Atoi(args[i])
			if err != nil {
				usage()
			}
			port = p
		case args[i] == "--mode" && i+1 < len(args):
			i++
			if args[i] != "once" && args[i] != "persistent" {
				usage()
			}
			once = args[i] == "once"
		default:
			p, err := strconv.Atoi(args[i])
			if err != nil {
				usage()
			}
			port = p
		}
	}

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_echo:", err)
		os.Exit(1)
	}
	fmt.Printf("127.0.0.1:%d\n", port)
	for {
		conn, err := ln.Accept()
		if err != nil {
			// Out of descriptors and the like: back off as net/http does, rather than spin.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go echo(conn, once)
	}
}
