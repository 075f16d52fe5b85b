package redisurl_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bduf/mcpauth/internal/redistest"
	"github.com/bduf/mcpauth/internal/redisurl"
)

func TestShouldReadTheTopologyFromTheURLOrTheMode(t *testing.T) {
	for _, c := range []struct {
		name, url, mode string
		want            redisurl.Mode
		err             string
	}{
		{"one server", "redis://127.0.0.1:6379/2", "", redisurl.Single, ""},
		{"one server over TLS", "rediss://user:pw@redis.example:6380", "", redisurl.Single, ""},
		{"a cluster by its nodes", "redis://10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000", "", redisurl.Cluster, ""},
		{"a cluster by its configuration endpoint", "rediss://clustercfg.example:6379", "cluster", redisurl.Cluster, ""},
		{"sentinels", "redis://10.0.0.1:26379?master_name=mcpauth&addr=10.0.0.2:26379", "", redisurl.Sentinel, ""},
		{"sentinels said so", "redis://10.0.0.1:26379?master_name=mcpauth", "sentinel", redisurl.Sentinel, ""},
		{"several nodes said to be one", "redis://10.0.0.1:7000?addr=10.0.0.2:7000", "single", "", "mode is single"},
		{"sentinel without a master name", "redis://10.0.0.1:26379", "sentinel", "", "master_name"},
		{"a master name in a cluster", "redis://10.0.0.1:7000?master_name=m", "cluster", "", "Sentinel"},
		{"an unknown mode", "redis://127.0.0.1:6379", "replicated", "", "want single, cluster or sentinel"},
		{"not a URL, password kept out", "redis://u:s3cret@host:port:x\x7f", "", "", "not a URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := redisurl.ModeOf(c.url, c.mode)
			switch {
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("ModeOf = %q, %v; want an error saying %q", got, err, c.err)
			case c.err == "" && (err != nil || got != c.want):
				t.Fatalf("ModeOf = %q, %v; want %q", got, err, c.want)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

// Each topology's URL gives a client that reads and writes that real topology.
func TestShouldConnectToEveryTopology(t *testing.T) {
	for _, c := range []struct {
		mode redisurl.Mode
		url  func(t *testing.T) string
	}{
		{redisurl.Single, func(t *testing.T) string { return "redis://" + redistest.Start(t) }},
		{redisurl.Cluster, func(t *testing.T) string { return redistest.StartCluster(t, 3).URL() }},
		{redisurl.Sentinel, func(t *testing.T) string { return redistest.StartSentinel(t).URL() }},
	} {
		t.Run(string(c.mode), func(t *testing.T) {
			t.Parallel()
			client, mode, err := redisurl.New(c.url(t), "")
			if err != nil || mode != c.mode {
				t.Fatalf("New = %q, %v; want %q", mode, err, c.mode)
			}
			defer client.Close()
			ctx := context.Background()
			for _, k := range []string{"a", "b", "c", "d", "e", "f"} { // several slots of a cluster
				if err := client.Set(ctx, k, k, 0).Err(); err != nil {
					t.Fatalf("SET %s: %v", k, err)
				}
				if v, err := client.Get(ctx, k).Result(); err != nil || v != k {
					t.Fatalf("GET %s = %q, %v", k, v, err)
				}
			}
		})
	}
}
