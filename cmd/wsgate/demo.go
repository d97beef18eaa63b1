package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/engine"
	"github.com/wsgate/wsgate/internal/wsecho"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run wsgate on :8080 in front of two embedded echo backends on 127.0.0.1:8010 and :8011, with the admin dashboard",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: ":8080", Usage: "address wsgate accepts clients on"},
			&cli.StringSliceFlag{Name: "backend-listen", Value: cli.NewStringSlice("127.0.0.1:8010", "127.0.0.1:8011"), Usage: "addresses of the embedded echo backends"},
			&cli.StringFlag{Name: "admin", Value: config.DefaultAdminListen, Usage: "admin API and dashboard address, or off"},
			&cli.BoolFlag{Name: "tls", Usage: "also serve wss on --tls-listen with a self-signed certificate made for the demo"},
			&cli.StringFlag{Name: "tls-listen", Value: ":8443", Usage: "address of the wss listener with --tls"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			cfg := config.Default()
			pool := config.DefaultPool()
			for i, addr := range c.StringSlice("backend-listen") {
				s, err := wsecho.Listen(addr, fmt.Sprintf("echo-%d", i+1))
				if err != nil {
					return fmt.Errorf("demo backend: %w", err)
				}
				defer s.Close()
				pool.Backends = append(pool.Backends, config.DefaultBackend(s.Addr()))
			}
			cfg.Pools = map[string]config.Pool{admin.DefaultPool: pool}
			if err := config.CheckListen(c.String("listen")); err != nil {
				return badFlag("listen", c.String("listen"), err)
			}
			cfg.Listeners = []config.Listener{config.DefaultListener(c.String("listen"))}
			if c.Bool("tls") {
				dir, err := os.MkdirTemp("", "wsgate-demo-tls-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				t, err := selfSigned(dir)
				if err != nil {
					return fmt.Errorf("demo certificate: %w", err)
				}
				l := config.DefaultListener(c.String("tls-listen"))
				l.TLS = t
				cfg.Listeners = append(cfg.Listeners, l)
			}
			if _, err := parseLevel(c.String("log-level")); err != nil {
				return badFlag("log-level", c.String("log-level"), err)
			}
			cfg.LogLevel = c.String("log-level")
			cfg.Admin.Address = c.String("admin")
			if _, err := cfg.Validate(); err != nil {
				return cli.Exit(err.Error(), exitUsage)
			}
			o := &serveOptions{cfg: cfg, token: os.Getenv(config.DefaultAdminTokenEnv)}
			o.ready = func(srv *engine.Server) { printDemo(c, srv, cfg) }
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, o, c.App.ErrWriter)
		},
	}
}

// selfSigned writes a fresh ECDSA certificate for localhost into dir.
func selfSigned(dir string) (*config.TLS, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "wsgate demo"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	t := &config.TLS{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(t.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(t.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, err
	}
	return t, nil
}

func printDemo(c *cli.Context, srv *engine.Server, cfg *config.Config) {
	port, tlsPort := 8080, 0
	for i, a := range srv.Addrs() {
		if ta, ok := a.(*net.TCPAddr); ok {
			if i == 0 {
				port = ta.Port
			} else {
				tlsPort = ta.Port
			}
		}
	}
	w := c.App.ErrWriter
	fmt.Fprintf(w, `
wsgate demo: two echo backends behind wsgate (least_conn), access log on stdout.

  websocat:  websocat ws://localhost:%[1]d/
  wscat:     npx wscat -c ws://localhost:%[1]d/
  browser:   open the console on any page and run
             ws = new WebSocket("ws://localhost:%[1]d/"); ws.onmessage = e => console.log(e.data); ws.onopen = () => ws.send("hello")
  plain:     curl -i http://localhost:%[1]d/   (shows the head the backend received)
`, port)
	if tlsPort != 0 {
		fmt.Fprintf(w, "  wss:       websocat -k wss://localhost:%[1]d/   or   npx wscat -n -c wss://localhost:%[1]d/   (self-signed certificate)\n", tlsPort)
	}
	if cfg.Admin.Address != "off" {
		fmt.Fprintf(w, "  dashboard: http://%s/   (stats, metrics at /metrics, drain buttons)\n", cfg.Admin.Address)
	}
	fmt.Fprintf(w, "\nCtrl-C stops it.\n")
}
