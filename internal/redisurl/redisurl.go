// Package redisurl turns MCPAUTH_REDIS_URL into a go-redis client of the topology it names: one
// server, a Redis Cluster or a master watched by Sentinels, in go-redis's own URL forms
// (ParseURL, ParseClusterURL, ParseFailoverURL), so that every option go-redis reads from a URL
// works here too.
package redisurl

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode is a Redis topology.
type Mode string

// The topologies.
const (
	Single   Mode = "single"   // redis://host:port/db, rediss://...
	Cluster  Mode = "cluster"  // redis://h1:p1?addr=h2:p2&addr=h3:p3 (one address: a configuration endpoint)
	Sentinel Mode = "sentinel" // redis://s1:p1?master_name=M&addr=s2:p2 (the Sentinels' addresses)
)

// Timeout is the dial, read and write timeout of a client whose URL sets none: a Redis that
// does not answer within it counts as down (the callers fail closed, or degrade), rather than
// holding a login for go-redis's default seconds.
const Timeout = time.Second

// ModeOf is the topology of rawURL: explicit when given ("single", "cluster", "sentinel"), else
// inferred: master_name names a Sentinel set, addr parameters a Cluster, neither a single
// server.
func ModeOf(rawURL, explicit string) (Mode, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", errors.New("not a URL") // url's error would repeat the URL, password included
	}
	q := u.Query()
	switch Mode(explicit) {
	case Single, Cluster:
		if q.Has("master_name") {
			return "", fmt.Errorf("master_name names a Sentinel set, but the mode is %s", explicit)
		}
		if Mode(explicit) == Single && q.Has("addr") {
			return "", errors.New("addr lists more nodes, but the mode is single (use cluster or sentinel)")
		}
		return Mode(explicit), nil
	case Sentinel:
		if !q.Has("master_name") {
			return "", errors.New("the mode is sentinel: give the master's name as master_name")
		}
		return Sentinel, nil
	case "":
	default:
		return "", fmt.Errorf("mode %q: want single, cluster or sentinel", explicit)
	}
	switch {
	case q.Has("master_name"):
		return Sentinel, nil
	case q.Has("addr"):
		return Cluster, nil
	}
	return Single, nil
}

// New returns a client of rawURL's topology (ModeOf) and the topology. It does not connect.
func New(rawURL, explicit string) (redis.UniversalClient, Mode, error) {
	mode, err := ModeOf(rawURL, explicit)
	if err != nil {
		return nil, "", err
	}
	switch mode {
	case Cluster:
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, "", err
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = orTimeout(o.DialTimeout), orTimeout(o.ReadTimeout), orTimeout(o.WriteTimeout)
		return redis.NewClusterClient(o), mode, nil
	case Sentinel:
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, "", err
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = orTimeout(o.DialTimeout), orTimeout(o.ReadTimeout), orTimeout(o.WriteTimeout)
		return redis.NewFailoverClient(o), mode, nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, "", err
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = orTimeout(o.DialTimeout), orTimeout(o.ReadTimeout), orTimeout(o.WriteTimeout)
	return redis.NewClient(o), mode, nil
}

// orTimeout is d, or Timeout when the URL left it unset (a negative d, "no timeout", stays).
func orTimeout(d time.Duration) time.Duration {
	if d == 0 {
		return Timeout
	}
	return d
}
