package pki_test

import (
	"crypto/tls"
	"fmt"
	"log"
	"net"

	"github.com/iotjobs/iotjobs/testkit/pki"
)

// A TLS listener that requires a client certificate, and a client with a
// thing certificate.
func Example() {
	ca, err := pki.NewCA("iotjobs test CA")
	if err != nil {
		log.Fatal(err)
	}
	server, err := ca.Server("localhost", "127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	thing, err := ca.Client("my-thing")
	if err != nil {
		log.Fatal(err)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerTLS(server))
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			seen <- err.Error()
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			seen <- err.Error()
			return
		}
		seen <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}()

	conn, err := tls.Dial("tcp", ln.Addr().String(), ca.ClientTLS(thing))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println("server saw client", <-seen)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	fmt.Println("verified server for 127.0.0.1:", port != "")
	// Output:
	// server saw client my-thing
	// verified server for 127.0.0.1: true
}
