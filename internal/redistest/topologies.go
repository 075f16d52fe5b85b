package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The distributed topologies an operator runs Redis in: a Cluster of masters, and a master with
// a replica watched by Sentinels. Each process is a redis-server of its own on a free loopback
// port, killed when the test ends.

// clusterTimeout bounds how long a new cluster takes to agree (a new master waits 2 s before it
// accepts writes in a cluster that was down: Redis's CLUSTER_WRITABLE_DELAY).
const clusterTimeout = 20 * time.Second

// Cluster is a Redis Cluster of masters without replicas, the 16384 slots split evenly.
type Cluster struct{ Nodes []*Server }

// StartCluster starts a cluster of masters nodes and waits until every node answers
// cluster_state:ok.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	bin := binary()
	if bin == "" {
		t.Fatal("redistest: redis-server not found: install the Debian package redis-server")
	}
	c := &Cluster{}
	for i := range masters {
		dir := filepath.Join(t.TempDir(), strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		var errs []error
		for range attempts {
			s, err := start(bin, dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000")
			if err == nil {
				t.Cleanup(s.Kill)
				c.Nodes = append(c.Nodes, s)
				break
			}
			errs = append(errs, err)
		}
		if len(c.Nodes) != i+1 {
			t.Fatalf("redistest: cluster node %d did not start: %v", i, errors.Join(errs...))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := c.form(ctx); err != nil {
		t.Fatalf("redistest: form the cluster: %v", err)
	}
	return c
}

// form gives each node its share of the slots and a distinct config epoch, introduces them, and
// waits until all agree.
func (c *Cluster) form(ctx context.Context) error {
	per := 16384 / len(c.Nodes)
	for i, n := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: n.Addr()})
		lo, hi := i*per, (i+1)*per-1
		if i == len(c.Nodes)-1 {
			hi = 16383
		}
		err := cl.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err()
		if err == nil {
			err = cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err()
		}
		if err == nil && i > 0 {
			host, port, _ := net.SplitHostPort(n.Addr())
			first := redis.NewClient(&redis.Options{Addr: c.Nodes[0].Addr()})
			err = first.Do(ctx, "CLUSTER", "MEET", host, port).Err()
			_ = first.Close()
		}
		_ = cl.Close()
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Addr(), err)
		}
	}
	return awaitAll(ctx, c.Addrs(), func(ctx context.Context, cl *redis.Client) error {
		info, err := cl.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))) {
			return errors.New("not agreed yet")
		}
		return nil
	})
}

// Addrs are the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// URL is the cluster as go-redis's ParseClusterURL reads it: redis://a1?addr=a2&addr=a3.
func (c *Cluster) URL() string { return "redis://" + c.Addrs()[0] + addrParams(c.Addrs()[1:], "?") }

// Client is a cluster client for t (closed when t ends).
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// SentinelMaster is the master name the Sentinels of StartSentinel watch.
const SentinelMaster = "mcpauth"

// Sentinel is a master with one replica and three Sentinels watching it (quorum 2, a master
// down after 1 s).
type Sentinel struct {
	Master, Replica *Server
	Sentinels       []*Server
}

// StartSentinel starts the set and waits until the replica is in sync and every Sentinel knows
// the replica and the two other Sentinels: a failover can then happen.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	bin := binary()
	if bin == "" {
		t.Fatal("redistest: redis-server not found: install the Debian package redis-server")
	}
	s := &Sentinel{Master: StartServer(t)}
	host, port, _ := net.SplitHostPort(s.Master.Addr())
	s.Replica = startWith(t, bin, func(string) error { return nil }, "--replicaof", host, port)
	for range 3 {
		conf := func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "sentinel.conf"), []byte(fmt.Sprintf(
				"sentinel monitor %s %s %s 2\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 10000\n",
				SentinelMaster, host, port, SentinelMaster, SentinelMaster)), 0o600)
		}
		s.Sentinels = append(s.Sentinels, startWith(t, bin, conf, sentinelFlag))
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	err := awaitAll(ctx, s.sentinelAddrs(), func(ctx context.Context, cl *redis.Client) error {
		sc := redis.NewSentinelClient(&redis.Options{Addr: cl.Options().Addr})
		defer sc.Close()
		m, err := sc.Master(ctx, SentinelMaster).Result()
		if err != nil {
			return err
		}
		if m["num-other-sentinels"] != "2" || m["num-slaves"] != "1" {
			return fmt.Errorf("knows %s sentinels and %s replicas", m["num-other-sentinels"], m["num-slaves"])
		}
		return nil
	})
	if err == nil {
		err = awaitAll(ctx, []string{s.Replica.Addr()}, func(ctx context.Context, cl *redis.Client) error {
			info, err := cl.Info(ctx, "replication").Result()
			if err != nil || !strings.Contains(info, "master_link_status:up") {
				return fmt.Errorf("replica not in sync: %v", err)
			}
			return nil
		})
	}
	if err != nil {
		t.Fatalf("redistest: the Sentinel set did not settle: %v", err)
	}
	return s
}

const sentinelFlag = "--sentinel"

// startWith starts a server in a directory of its own that prepare fills first.
func startWith(t testing.TB, bin string, prepare func(dir string) error, extra ...string) *Server {
	t.Helper()
	var errs []error
	for range attempts {
		dir := t.TempDir()
		if err := prepare(dir); err != nil {
			t.Fatal(err)
		}
		s, err := start(bin, dir, extra...)
		if err == nil {
			t.Cleanup(s.Kill)
			return s
		}
		errs = append(errs, err)
	}
	t.Fatalf("redistest: redis-server %v did not start: %v", extra, errors.Join(errs...))
	return nil
}

func (s *Sentinel) sentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr()
	}
	return out
}

// URL is the set as go-redis's ParseFailoverURL reads it:
// redis://s1?master_name=M&addr=s2&addr=s3.
func (s *Sentinel) URL() string {
	a := s.sentinelAddrs()
	return "redis://" + a[0] + "?master_name=" + SentinelMaster + addrParams(a[1:], "&")
}

// Client is a failover client for t (closed when t ends).
func (s *Sentinel) Client(t testing.TB) *redis.Client {
	cl := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: s.sentinelAddrs()})
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// KillMaster kills the master (SIGKILL) and waits until the Sentinels have promoted the replica:
// it returns how long the failover took.
func (s *Sentinel) KillMaster(t testing.TB) time.Duration {
	t.Helper()
	start := time.Now()
	s.Master.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	err := awaitAll(ctx, s.sentinelAddrs(), func(ctx context.Context, cl *redis.Client) error {
		sc := redis.NewSentinelClient(&redis.Options{Addr: cl.Options().Addr})
		defer sc.Close()
		addr, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		if err != nil {
			return err
		}
		if net.JoinHostPort(addr[0], addr[1]) != s.Replica.Addr() {
			return errors.New("the replica is not the master yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: no failover: %v", err)
	}
	s.Master, s.Replica = s.Replica, nil
	return time.Since(start)
}

func addrParams(addrs []string, first string) string {
	var b strings.Builder
	for i, a := range addrs {
		if i == 0 {
			b.WriteString(first)
		} else {
			b.WriteString("&")
		}
		b.WriteString("addr=" + a)
	}
	return b.String()
}

// awaitAll polls check against every address until it passes for all, or ctx ends.
func awaitAll(ctx context.Context, addrs []string, check func(context.Context, *redis.Client) error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for _, a := range addrs {
		cl := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		for {
			err := check(ctx, cl)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				_ = cl.Close()
				return fmt.Errorf("%s: %w", a, err)
			case <-tick.C:
			}
		}
		_ = cl.Close()
	}
	return nil
}

// Topology is a way to run Redis; Start runs one for t (stopped when t ends).
type Topology struct {
	Name  string
	Start func(t testing.TB) Running
}

// Running is a running topology: its URL (as MCPAUTH_REDIS_URL takes it) and a maker of
// clients of it, each a client of its own as each instance of mcpauth has (closed when t ends).
type Running struct {
	URL    string
	Client func() redis.UniversalClient
}

// Topologies are every topology mcpauth supports, for tests that must hold on each.
var Topologies = []Topology{
	{"single", func(t testing.TB) Running {
		addr := Start(t)
		return Running{URL: "redis://" + addr, Client: func() redis.UniversalClient {
			c := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}}
	}},
	{"cluster", func(t testing.TB) Running {
		c := StartCluster(t, 3)
		return Running{URL: c.URL(), Client: func() redis.UniversalClient { return c.Client(t) }}
	}},
	{"sentinel", func(t testing.TB) Running {
		s := StartSentinel(t)
		return Running{URL: s.URL(), Client: func() redis.UniversalClient { return s.Client(t) }}
	}},
}
