// TLS line echo in Go as Go servers are written: crypto/tls's Listen, a goroutine per
// connection, bufio over the *tls.Conn (the handshake runs on its first Read).
//
// usage: go_tls_echo [PORT | --port N] [--mode once|persistent] --cert FILE --key FILE
//
//	once:       read one line, echo it, close with close_notify (the seed's server)
//	persistent: echo every line until end of stream (the default)
//
// Listens on 127.0.0.1 with TLS 1.3 only and the PEM certificate chain and key given (run.sh
// makes an ECDSA P-256 one); session tickets are on, as crypto/tls has them by default. Each
// line is echoed with its "\n". As in go_echo.go, the runtime sets TCP_NODELAY, raises the
// descriptor limit and sizes GOMAXPROCS from the CPU affinity.
package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

func echo(conn net.Conn, once bool) {
	defer conn.Close() // sends close_notify
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
		// Flush only when no further request is already buffered: pipelined lines share a write
		// (and a TLS record).
		if r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}

func main() {
	port, once := 2020, false
	certFile, keyFile := "", ""
	usage := func() {
		fmt.Fprintf(os.Stderr, "usage: %s [PORT | --port N] [--mode once|persistent] --cert FILE --key FILE\n", os.Args[0])
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
		case args[i] == "--cert" && i+1 < len(args):
			i++
			certFile = args[i]
		case args[i] == "--key" && i+1 < len(args):
			i++
			keyFile = args[i]
		default:
			p, err := strconv.Atoi(args[i])
			if err != nil {
				usage()
			}
			port = p
		}
	}
	if certFile == "" || keyFile == "" {
		usage()
	}

	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_tls_echo:", err)
		os.Exit(1)
	}
	config := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port), config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_tls_echo:", err)
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
