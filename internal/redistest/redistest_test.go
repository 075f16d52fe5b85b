package redistest_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

func TestShouldStartAClusterThatServesEverySlot(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	cl := c.Client(t)
	ctx := context.Background()
	for i := range 30 { // keys spread over the three masters' slots
		if err := cl.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET k%d through the cluster: %v", i, err)
		}
	}
	var mu sync.Mutex // ForEachMaster calls each master at once
	masters := map[string]bool{}
	_ = cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if n, _ := m.DBSize(ctx).Result(); n > 0 {
			mu.Lock()
			masters[m.Options().Addr] = true
			mu.Unlock()
		}
		return nil
	})
	if len(masters) != 3 {
		t.Errorf("the keys landed on %d masters, want 3", len(masters))
	}
}

func TestShouldFailOverToTheReplicaWhenTheMasterDies(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	cl := s.Client(t)
	ctx := context.Background()
	if err := cl.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Replication is asynchronous: wait until the replica has the write (a write it has not
	// received yet is lost with the master, as with any Redis).
	if n, err := cl.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica: %d, %v", n, err)
	}
	took := s.KillMaster(t)
	t.Logf("failover took %s", took)
	// The client finds the new master through the Sentinels (a write may fail while it does).
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cl.Set(ctx, "after", "1", 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write after the failover: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the Sentinels' answer changes without telling anyone
	}
	if v, err := cl.Get(ctx, "before").Result(); err != nil || v != "1" {
		t.Errorf("the write before the failover, on the new master: %q %v (the replica had it)", v, err)
	}
}
