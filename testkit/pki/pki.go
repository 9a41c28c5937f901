// Package pki makes throw-away X.509 certificates for tests, benchmarks and
// the emulator: a certificate authority, server certificates for a TLS
// listener and client certificates whose common name is a thing name, as AWS
// IoT Core issues them.
//
// Keys are ECDSA P-256. Nothing is meant to be kept: certificates are valid
// from an hour ago for [Validity], and the key files WritePEM writes are
// readable by everyone (mode 0644) so that a broker running as another user,
// such as mosquitto, can read them. Never use this package for real keys.
//
// A typical test:
//
//	ca, err := pki.NewCA("iotjobs test CA")
//	server, err := ca.Server("localhost", "127.0.0.1")
//	client, err := ca.Client("my-thing")
//	serverTLS := ca.ServerTLS(server) // requires a client certificate from ca
//	clientTLS := &tls.Config{Certificates: []tls.Certificate{client}, RootCAs: ca.Pool()}
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Validity is how long the certificates made here are valid, counted from
// an hour before they are made (so that a clock slightly behind accepts them).
const Validity = 365 * 24 * time.Hour

// CA is a certificate authority that signs server and client certificates.
// Its methods are safe for concurrent use.
type CA struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed certificate authority whose subject common name
// is name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	tmpl, err := template(name)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	return &CA{cert: cert, der: der, key: key}, nil
}

// Certificate returns the CA's certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Pool returns a new certificate pool holding only the CA's certificate:
// the RootCAs of a client or the ClientCAs of a server.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// CertPEM returns the CA's certificate in PEM form.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})
}

// Server makes a server certificate for the given names, each a DNS name
// or an IP address (such as "localhost" and "127.0.0.1"). The first name is
// also its common name. At least one name is required.
func (ca *CA) Server(names ...string) (tls.Certificate, error) {
	if len(names) == 0 {
		return tls.Certificate{}, errors.New("pki: a server certificate needs at least one name")
	}
	tmpl, err := template(names[0])
	if err != nil {
		return tls.Certificate{}, err
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	return ca.sign(tmpl)
}

// Client makes a client certificate whose subject common name is cn,
// usually the thing name.
func (ca *CA) Client(cn string) (tls.Certificate, error) {
	if cn == "" {
		return tls.Certificate{}, errors.New("pki: a client certificate needs a common name")
	}
	tmpl, err := template(cn)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.sign(tmpl)
}

// ServerTLS returns a TLS configuration for a listener that presents cert
// and requires a client certificate signed by ca. TLS 1.2 is the minimum.
func (ca *CA) ServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLS returns a TLS configuration for a client that presents cert and
// trusts only ca. TLS 1.2 is the minimum.
func (ca *CA) ClientTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.Pool(),
		MinVersion:   tls.VersionTLS12,
	}
}

// WriteCA writes the CA's certificate to dir/name.pem (mode 0644) and
// returns the path.
func (ca *CA) WriteCA(dir, name string) (string, error) {
	path := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(path, ca.CertPEM(), 0o644); err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	return path, nil
}

func (ca *CA) sign(tmpl *x509.Certificate) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: generate key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: parse certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func template(cn string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"iotjobs test"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(Validity),
	}, nil
}

// CertPEM returns the certificate chain of cert in PEM form, leaf first.
func CertPEM(cert tls.Certificate) []byte {
	var b []byte
	for _, der := range cert.Certificate {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return b
}

// KeyPEM returns the private key of cert in PEM form (PKCS #8, "PRIVATE
// KEY").
func KeyPEM(cert tls.Certificate) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WritePEM writes cert's chain to dir/name.crt and its key to dir/name.key,
// both mode 0644 (test keys only: readable by a broker running as another
// user), and returns the two paths. name must be a plain file name.
func WritePEM(dir, name string, cert tls.Certificate) (certFile, keyFile string, err error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return "", "", fmt.Errorf("pki: bad file name %q", name)
	}
	if len(cert.Certificate) == 0 {
		return "", "", errors.New("pki: empty certificate")
	}
	key, err := KeyPEM(cert)
	if err != nil {
		return "", "", err
	}
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, CertPEM(cert), 0o644); err != nil {
		return "", "", fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(keyFile, key, 0o644); err != nil {
		return "", "", fmt.Errorf("pki: %w", err)
	}
	return certFile, keyFile, nil
}

// Set is the usual fixture: a CA, a server certificate for "localhost",
// 127.0.0.1 and ::1, and a client certificate for one thing.
type Set struct {
	// CA signed both certificates.
	CA *CA
	// Server is the server certificate.
	Server tls.Certificate
	// Client is the client certificate; its common name is the thing name.
	Client tls.Certificate
}

// NewSet makes a CA named "iotjobs test CA", a server certificate for
// "localhost", 127.0.0.1 and ::1, and a client certificate for thing.
func NewSet(thing string) (*Set, error) {
	ca, err := NewCA("iotjobs test CA")
	if err != nil {
		return nil, err
	}
	server, err := ca.Server("localhost", "127.0.0.1", "::1")
	if err != nil {
		return nil, err
	}
	client, err := ca.Client(thing)
	if err != nil {
		return nil, err
	}
	return &Set{CA: ca, Server: server, Client: client}, nil
}

// Files are the paths of a Set written by WriteFiles.
type Files struct {
	// CA is the CA certificate (ca.pem).
	CA string
	// ServerCert and ServerKey are server.crt and server.key.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are client.crt and client.key.
	ClientCert, ClientKey string
}

// WriteFiles writes the set into dir as ca.pem, server.crt, server.key,
// client.crt and client.key, and returns their paths.
func (s *Set) WriteFiles(dir string) (Files, error) {
	var f Files
	var err error
	if f.CA, err = s.CA.WriteCA(dir, "ca"); err != nil {
		return Files{}, err
	}
	if f.ServerCert, f.ServerKey, err = WritePEM(dir, "server", s.Server); err != nil {
		return Files{}, err
	}
	if f.ClientCert, f.ClientKey, err = WritePEM(dir, "client", s.Client); err != nil {
		return Files{}, err
	}
	return f, nil
}
