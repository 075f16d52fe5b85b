package redistest_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/redistest"
)

func roundTrip(t *testing.T, addr, cmd string) (string, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('\n')
}

func TestShouldStartARedisThatAnswersOnLoopback(t *testing.T) {
	addr := redistest.Start(t)
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("address %q is not on 127.0.0.1 (%v)", addr, err)
	}
	got, err := roundTrip(t, addr, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
	if err != nil || got != "+OK\r\n" {
		t.Fatalf("SET answered %q, %v", got, err)
	}
}

func TestShouldGiveEachTestItsOwnServer(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if a == b {
		t.Fatalf("two servers on one address %s", a)
	}
}

func TestShouldStopTheServerWhenKilled(t *testing.T) {
	s := redistest.StartServer(t)
	s.Kill()
	s.Kill() // idempotent
	if _, err := roundTrip(t, s.Addr(), "*1\r\n$4\r\nPING\r\n"); err == nil {
		t.Fatalf("server still answers after Kill")
	}
}
