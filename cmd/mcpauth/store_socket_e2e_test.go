package main

// End-to-end test that the embedded store is not open to other local processes: FerretDB has
// no authentication, so a TCP port of it would hand the password hashes and the audit trail to
// any user of the machine.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// listeningPorts returns the TCP ports process pid listens on (from /proc: its socket inodes,
// matched against the kernel's tables of listening sockets).
func listeningPorts(t *testing.T, pid int) []int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("read the server's file descriptors: %v", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil {
				ports = append(ports, int(p))
			}
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

func portOf(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("no port in %q", rawURL)
	}
	return p
}

func TestShouldNotOpenTheEmbeddedStoreToOtherLocalProcesses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the listening sockets from /proc")
	}
	t.Parallel()
	in := newInstance(t)
	if in.MongoURI != "" {
		t.Skip("runs against an external MongoDB (MCPAUTH_TEST_MONGO_URI): no embedded store")
	}
	srv := startHTTP(t, in, "http")
	c := dialHTTP(t, srv)
	c.Login(t, nil, in.Owner()) // the store answers the server

	// The server listens on its HTTP and metrics ports and nothing else.
	want := []int{portOf(t, srv.URL), portOf(t, srv.MetricsURL)}
	slices.Sort(want)
	got := listeningPorts(t, srv.Cmd.Process.Pid)
	if !slices.Equal(got, want) {
		t.Fatalf("the server listens on TCP ports %v, want only HTTP and metrics %v", got, want)
	}
	// And a stock MongoDB driver gets no answer from any of them.
	for _, p := range got {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		client, err := mongo.Connect(options.Client().ApplyURI(fmt.Sprintf("mongodb://127.0.0.1:%d/", p)).
			SetServerSelectionTimeout(2 * time.Second).SetConnectTimeout(time.Second))
		if err == nil {
			if err := client.Ping(ctx, nil); err == nil {
				t.Errorf("a MongoDB driver pinged the server's port %d", p)
			}
			_ = client.Disconnect(ctx)
		}
		cancel()
	}
	// The store is on a Unix socket in the store's directory, which only its owner can enter
	// (a path too long for a socket would put it in a private temporary directory instead).
	sock := filepath.Join(in.DataDir, "store", fmt.Sprintf("mongo-%d.sock", srv.Cmd.Process.Pid))
	if fi, err := os.Stat(sock); len(sock) <= 100 && (err != nil || fi.Mode()&os.ModeSocket == 0) {
		t.Errorf("the store's socket %s: %v (mode %v)", sock, err, fi)
	}
	if info, err := os.Stat(filepath.Dir(sock)); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("the socket's directory: %v; want mode 0700", err)
	}
}
