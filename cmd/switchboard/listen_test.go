package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A port that is already taken stops the server with an error that names
// the key to change.
func TestPortInUseNamesTheKey(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busyHTTP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyHTTP.Close()
	sipPort := taken.LocalAddr().(*net.UDPAddr).Port
	tests := []struct{ name, sip, web, want string }{
		{"sip", fmt.Sprintf("127.0.0.1:%d", sipPort), fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("sip.listen 127.0.0.1:%d", sipPort)},
		{"web", fmt.Sprintf("127.0.0.1:%d", freePort(t)), busyHTTP.Addr().String(), "web.listen " + busyHTTP.Addr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "sb.yaml")
			yaml := fmt.Sprintf("sip: {listen: %q}\nweb: {listen: %q, api_tokens: [abcdefgh]}\nstorage: {path: %q}\ncontrol: {socket: %q}\n",
				tt.sip, tt.web, filepath.Join(dir, "x.db"), filepath.Join(dir, "sb.sock"))
			if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			if code := run(context.Background(), []string{"serve", "--config", cfg}, &bytes.Buffer{}, &stderr); code == 0 {
				t.Fatal("serve exited 0 with its port taken")
			}
			if !strings.Contains(stderr.String(), tt.want) || !strings.Contains(stderr.String(), "address already in use") {
				t.Fatalf("stderr does not name %q: %s", tt.want, stderr.String())
			}
		})
	}
}
