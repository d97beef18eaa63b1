package handshake

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nginxConf is the DESIGN.md recipe, served twice: on the first port with
// the one line wsgate's golden files add (X-Forwarded-Proto), on the second
// exactly as DESIGN.md has it. %[1]s is the prefix directory, %[2]d the
// upstream's port, %[3]d and %[4]d the two listening ports.
const nginxConf = `daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fcgi; uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream ws { least_conn; server 127.0.0.1:%[2]d; }
  server {
    listen 127.0.0.1:%[3]d;
    location / {
      proxy_pass http://ws;  proxy_http_version 1.1;
      proxy_set_header Host $host;  proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Upgrade $http_upgrade;  proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 300s;
    }
  }
  server {
    listen 127.0.0.1:%[4]d;
    location / {
      proxy_pass http://ws;  proxy_http_version 1.1;
      proxy_set_header Host $host;  proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Upgrade $http_upgrade;  proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 300s;
    }
  }
}
`

// TestRewriteGoldenNginx replays every testdata/golden/*.in to a live nginx
// running the DESIGN.md recipe and checks that what nginx sends upstream is
// byte for byte NAME.golden and NAME.recipe, the files TestRewriteGolden
// holds AppendRewritten to. It needs nginx on PATH and runs only when asked:
//
//	WSGATE_NGINX=1 go test -run TestRewriteGoldenNginx ./handshake/
func TestRewriteGoldenNginx(t *testing.T) {
	if os.Getenv("WSGATE_NGINX") != "1" {
		t.Skip("set WSGATE_NGINX=1 to compare the golden files with a live nginx")
	}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not on PATH")
	}

	// The upstream records each head nginx sends and answers it: 101 to an
	// upgrade (nginx then tunnels), 200 otherwise.
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	heads := make(chan []byte, 1)
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				var h []byte
				for !bytes.HasSuffix(h, []byte("\r\n\r\n")) {
					line, err := br.ReadSlice('\n')
					h = append(h, line...)
					if err != nil {
						return
					}
				}
				heads <- h
				if bytes.Contains(bytes.ToLower(h), []byte("\r\nupgrade: ")) {
					io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
				} else {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				}
				io.Copy(io.Discard, br)
			}()
		}
	}()

	ports := [2]int{freePort(t), freePort(t)}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	text := fmt.Sprintf(nginxConf, dir, up.Addr().(*net.TCPAddr).Port, ports[0], ports[1])
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	out, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	for _, p := range ports {
		waitListening(t, p, dir)
	}

	ins, _ := filepath.Glob("testdata/golden/*.in")
	if len(ins) < 6 {
		t.Fatalf("golden inputs: %v", ins)
	}
	for _, in := range ins {
		raw := readFile(t, in)
		var req Request
		if err := ParseRequest(raw, &req, nil); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		body := strings.Repeat("x", int(req.ContentLength))
		base := strings.TrimSuffix(in, ".in")
		for i, golden := range []string{base + ".golden", base + ".recipe"} {
			got := replay(t, ports[i], append(raw, body...), heads)
			if want := readFile(t, golden); !bytes.Equal(got, want) {
				t.Errorf("%s: nginx sent\n%q\nthe file has\n%q", golden, got, want)
			}
		}
	}
}

// replay sends req to nginx on port and returns the head nginx sent
// upstream for it.
func replay(t *testing.T, port int, req []byte, heads <-chan []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-heads:
		return h
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing reached the upstream for %q", req)
		return nil
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, port int, dir string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
	}
	out, _ := os.ReadFile(filepath.Join(dir, "stderr"))
	log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	t.Fatalf("nginx is not listening on %d: %s%s", port, out, log)
}
