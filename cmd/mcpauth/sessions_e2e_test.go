package main

// End-to-end attacks on transport sessions and on what one client may hold: a session id is
// not a credential (another principal's requests into it are refused before they reach it),
// anonymous initialize floods keep memory bounded, one address holds a bounded number of
// sessions, listen streams and connections, and a client that stops reading its stream is dropped.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// openSession initializes a streamable-HTTP session with bearer ("" for anonymous) and
// returns its Mcp-Session-Id.
func openSession(t *testing.T, srv *httpServer, bearer string) string {
	t.Helper()
	r := mcptest.Post(t, srv.URL+"/mcp", bearer, mcptest.InitializeJSON)
	sid := r.Header.Get("Mcp-Session-Id")
	if r.Status != http.StatusOK || sid == "" {
		t.Fatalf("initialize: status %d, Mcp-Session-Id %q: %s", r.Status, sid, r.Body)
	}
	if r := mcptest.Post(t, srv.URL+"/mcp", bearer, `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		"Mcp-Session-Id", sid, "Mcp-Protocol-Version", "2025-06-18"); r.Status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: status %d: %s", r.Status, r.Body)
	}
	return sid
}

// inSession posts body into session sid with bearer.
func inSession(t *testing.T, srv *httpServer, bearer, sid, body string) mcptest.Response {
	t.Helper()
	return mcptest.Post(t, srv.URL+"/mcp", bearer, body, "Mcp-Session-Id", sid, "Mcp-Protocol-Version", "2025-06-18")
}

// sessionRequest sends method (GET or DELETE) for session sid with bearer; a GET's stream is
// not read.
func sessionRequest(t *testing.T, srv *httpServer, method, bearer, sid string) int {
	t.Helper()
	pairs := []string{"Mcp-Protocol-Version", "2025-06-18", "Accept", "text/event-stream"}
	if sid != "" {
		pairs = append(pairs, "Mcp-Session-Id", sid)
	}
	if bearer != "" {
		pairs = append(pairs, "Authorization", "Bearer "+bearer)
	}
	return send(t, method, srv.URL+"/mcp", "", pairs...).Status
}

// wantSessionNotFound checks a refusal is the one for an id never issued: 404 with a JSON-RPC
// error body.
func wantSessionNotFound(t *testing.T, what string, r mcptest.Response) {
	t.Helper()
	var body struct {
		JSONRPC string `json:"jsonrpc"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if r.Status != http.StatusNotFound || json.Unmarshal(r.Body, &body) != nil || body.JSONRPC != "2.0" || body.Error.Code == 0 {
		t.Errorf("%s: status %d, body %s; want 404 with a JSON-RPC error", what, r.Status, r.Body)
	}
}

// victimAndMallory starts an attack server and logs in its owner (the victim) and another
// user of the same organization (the attacker with an account of her own).
func victimAndMallory(t *testing.T) (in *instance, srv *httpServer, victim, mallory tokenResult) {
	t.Helper()
	in, sec, srv, owner, _ := attackServer(t)
	password := freshPassword(sec)
	owner.Call(t, "user_create", args{"email": "mallory@example.com", "password": password})
	mallory = dialHTTP(t, srv).Login(t, sec, args{"email": "mallory@example.com", "password": password})
	return in, srv, dialHTTP(t, srv).Login(t, sec, in.Owner()), mallory
}

func TestShouldNotLetAnotherPrincipalUseAStreamableSession(t *testing.T) {
	t.Parallel()
	in, srv, victim, mallory := victimAndMallory(t)
	sid := openSession(t, srv, victim.AccessToken)

	// The victim listens on its session's stream; whatever reaches it is kept.
	ctx, stopListening := context.WithCancel(context.Background())
	defer stopListening()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+victim.AccessToken)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	req.Header.Set("Accept", "text/event-stream")
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != http.StatusOK {
		t.Fatalf("the victim's GET stream: %v %v", err, stream)
	}
	heard := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(stream.Body)
		heard <- string(b)
	}()

	login := mcptest.ToolsCallJSON(666, "auth_login", args{"email": in.OwnerEmail, "password": in.OwnerPassword})
	for _, who := range []struct{ name, bearer string }{{"a stranger", ""}, {"another user", mallory.AccessToken}} {
		t.Run(who.name, func(t *testing.T) {
			wantSessionNotFound(t, "a login posted into the victim's session (login CSRF)", inSession(t, srv, who.bearer, sid, login))
			wantSessionNotFound(t, "a forged response with the victim's request id",
				inSession(t, srv, who.bearer, sid, `{"jsonrpc":"2.0","id":666,"result":{}}`))
			wantSessionNotFound(t, "a cancellation of the victim's requests", inSession(t, srv, who.bearer, sid,
				`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"666"}}`))
			if st := sessionRequest(t, srv, http.MethodGet, who.bearer, sid); st != http.StatusNotFound {
				t.Errorf("joining the victim's stream: status %d, want 404", st)
			}
			if st := sessionRequest(t, srv, http.MethodDelete, who.bearer, sid); st != http.StatusNotFound {
				t.Errorf("deleting the victim's session: status %d, want 404", st)
			}
		})
	}
	// An id never issued gets the same answer; a GET without a session opens nothing.
	wantSessionNotFound(t, "an id never issued", inSession(t, srv, "", "never-issued-0123456789", login))
	if st := sessionRequest(t, srv, http.MethodGet, "", ""); st != http.StatusBadRequest {
		t.Errorf("an anonymous GET without a session: status %d, want 400", st)
	}

	// The victim's session is untouched and still the victim's.
	if r := inSession(t, srv, victim.AccessToken, sid, mcptest.ToolsCallJSON(2, "auth_whoami", nil)); r.Status != http.StatusOK ||
		!strings.Contains(string(r.Body), in.OwnerEmail) {
		t.Fatalf("the victim's own call after the attacks: status %d: %s", r.Status, r.Body)
	}
	// Its DELETE ends it: for the victim too, the id is then unknown.
	if st := sessionRequest(t, srv, http.MethodDelete, victim.AccessToken, sid); st != http.StatusOK {
		t.Fatalf("the victim's DELETE: status %d", st)
	}
	wantSessionNotFound(t, "the deleted session", inSession(t, srv, victim.AccessToken, sid, mcptest.ToolsCallJSON(3, "auth_whoami", nil)))
	stopListening()
	if got := <-heard; strings.Contains(got, "666") {
		t.Errorf("the victim's stream carried the attacker's messages:\n%s", got)
	}
}

func TestShouldGiveAnAnonymousSessionToTheUserWhoLogsInWithIt(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	srv := startHTTP(t, in, "http")
	sid := openSession(t, srv, "")
	r := inSession(t, srv, "", sid, mcptest.ToolsCallJSON(2, "auth_login", in.Owner()))
	var login struct {
		Result struct {
			StructuredContent tokenResult `json:"structuredContent"`
		} `json:"result"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &login) != nil || login.Result.StructuredContent.AccessToken == "" {
		t.Fatalf("auth_login in the anonymous session: status %d: %s", r.Status, r.Body)
	}
	token := login.Result.StructuredContent.AccessToken
	if r := inSession(t, srv, token, sid, mcptest.ToolsCallJSON(3, "auth_whoami", nil)); r.Status != http.StatusOK {
		t.Fatalf("the first authenticated call in the session: status %d: %s", r.Status, r.Body)
	}
	// From then on it is the user's: the anonymous requests that opened it no longer reach it.
	wantSessionNotFound(t, "an anonymous request into the session its user now holds",
		inSession(t, srv, "", sid, `{"jsonrpc":"2.0","id":4,"method":"tools/list"}`))
}

// sseStream is an open GET /sse: its session id, and its events as they arrive.
type sseStream struct {
	SessionID string
	events    chan string
	close     func()
}

func openSSE(t *testing.T, srv *httpServer, bearer string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/sse", nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET /sse: %v %v", err, resp)
	}
	s := &sseStream{events: make(chan string, 256), close: func() { cancel(); resp.Body.Close() }}
	t.Cleanup(s.close)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && strings.Contains(data, "sessionId=") {
			_, s.SessionID, _ = strings.Cut(data, "sessionId=")
			break
		}
	}
	if s.SessionID == "" {
		t.Fatalf("GET /sse: no endpoint event")
	}
	go func() {
		defer close(s.events)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
				s.events <- strings.TrimSpace(data)
			}
		}
	}()
	return s
}

// until returns the stream's events up to the first that contains marker.
func (s *sseStream) until(t *testing.T, marker string) []string {
	t.Helper()
	var got []string
	timeout := time.After(callTimeout)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				t.Fatalf("the stream ended before %q; it carried %v", marker, got)
			}
			got = append(got, e)
			if strings.Contains(e, marker) {
				return got
			}
		case <-timeout:
			t.Fatalf("no %q on the stream within %s; it carried %v", marker, callTimeout, got)
		}
	}
}

func TestShouldNotLetAnotherPrincipalPostIntoAnSSESession(t *testing.T) {
	t.Parallel()
	in, srv, victim, mallory := victimAndMallory(t)
	stream := openSSE(t, srv, victim.AccessToken)
	message := srv.URL + "/message?sessionId=" + stream.SessionID

	login := mcptest.ToolsCallJSON(666, "auth_login", args{"email": in.OwnerEmail, "password": in.OwnerPassword})
	for _, who := range []struct{ name, bearer string }{{"a stranger", ""}, {"another user", mallory.AccessToken}} {
		wantSessionNotFound(t, who.name+"'s login posted into the victim's SSE session", mcptest.Post(t, message, who.bearer, login))
		wantSessionNotFound(t, who.name+"'s forged response", mcptest.Post(t, message, who.bearer, `{"jsonrpc":"2.0","id":666,"result":{}}`))
	}
	// The victim's own ping is answered on its stream, and nothing of the attacker's came first.
	if r := mcptest.Post(t, message, victim.AccessToken, `{"jsonrpc":"2.0","id":7,"method":"ping"}`); r.Status != http.StatusAccepted {
		t.Fatalf("the victim's ping: status %d: %s", r.Status, r.Body)
	}
	for _, e := range stream.until(t, `"id":7`) {
		if strings.Contains(e, "666") {
			t.Errorf("the victim's stream carried the attacker's message: %s", e)
		}
	}
}

// rssBytes is the resident set of process pid, from /proc/<pid>/status.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

func TestShouldKeepMemoryBoundedUnderAnAnonymousInitializeFlood(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	srv := startHTTP(t, in, "http")
	mcptest.Get(t, srv.URL+"/healthz") // the listener's first request is not part of the flood
	before := rssBytes(t, srv.Cmd.Process.Pid)

	// 1,500 initialize requests as large as an initialize may be (16 KiB), from one address,
	// each opening a session it never uses again: the flood of issue 11, within the caps.
	name := strings.Repeat("x", 15<<10)
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},` +
		`"clientInfo":{"name":"` + name + `","version":"1"}}}`
	statuses := map[int]int{}
	var opened []string
	for range 1500 {
		r := mcptest.Post(t, srv.URL+"/mcp", "", initialize)
		statuses[r.Status]++
		if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
			opened = append(opened, sid)
		}
	}
	if statuses[http.StatusOK] != 64 || statuses[http.StatusTooManyRequests] != 1500-64 {
		t.Errorf("statuses %v: want 64 sessions opened (the per-address cap), the rest 429", statuses)
	}
	// 1,500 more at 200 KiB are refused before anything is kept.
	big := strings.Replace(initialize, name, strings.Repeat("x", 200<<10), 1)
	for range 1500 {
		if r := mcptest.Post(t, srv.URL+"/mcp", "", big); r.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("a 200 KiB initialize: status %d, want 413", r.Status)
		}
	}
	after := rssBytes(t, srv.Cmd.Process.Pid)
	// Unbounded, the first flood alone kept 1,500 × 15 KiB (22 MB) and the second 300 MB; what
	// 64 sessions keep is 1 MB. The bound leaves room for the garbage collector's headroom.
	const bound = 48 << 20
	t.Logf("RSS %d MB before, %d MB after the floods", before>>20, after>>20)
	if after-before > bound {
		t.Errorf("RSS grew by %d MB during the flood, more than %d MB", (after-before)>>20, bound>>20)
	}

	// Another address is not refused, and a closed session frees its place.
	other := mcptest.DialHTTPFrom(t, srv, "127.0.0.2")
	other.ListTools(t)
	if st := sessionRequest(t, srv, http.MethodDelete, "", opened[0]); st != http.StatusOK {
		t.Fatalf("DELETE of a flood session: status %d", st)
	}
	if r := mcptest.Post(t, srv.URL+"/mcp", "", mcptest.InitializeJSON); r.Status != http.StatusOK {
		t.Errorf("initialize after a DELETE freed a place: status %d: %s", r.Status, r.Body)
	}
}

// openListen opens an anonymous 2026-07-28 subscriptions/listen stream and returns the
// response with its body unread (an accepted stream stays open until closed).
func openListen(t *testing.T, srv *httpServer) *http.Response {
	t.Helper()
	body, headers := modernRequest("subscriptions/listen", "", map[string]any{"notifications": map[string]any{"toolsListChanged": true}})
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req) // no timeout: the stream lasts
	if err != nil {
		t.Fatalf("subscriptions/listen: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// A subscriptions/listen stream lasts like a session, so a stranger who opens them by the
// thousand is held to the per-address session cap: the streams past it are refused 429 with a
// JSON-RPC error, another address is not, and a closed stream frees its place.
func TestShouldCapTheAnonymousListenStreamsOfOneAddress(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	const perAddress = 8
	srv := startHTTP(t, in, "http", "MCPAUTH_MAX_SESSIONS_PER_ADDRESS="+strconv.Itoa(perAddress))
	var held []*http.Response
	for i := range perAddress {
		resp := openListen(t, srv)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("listen stream %d of %d: status %d, Content-Type %q", i+1, perAddress, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		held = append(held, resp)
	}
	for i := range 200 {
		resp := openListen(t, srv)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("listen stream %d past the cap: status %d, want 429: %s", i+1, resp.StatusCode, b)
		}
		if i == 0 {
			mcptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}.Challenge().WantRefusal(t, mcptest.RPCSessionLimit, "RATE_LIMITED")
		}
	}
	// A session of the same address is held to the same cap; another address is not.
	if r := mcptest.Post(t, srv.URL+"/mcp", "", mcptest.InitializeJSON); r.Status != http.StatusTooManyRequests {
		t.Errorf("initialize beside %d listen streams: status %d, want 429", perAddress, r.Status)
	}
	mcptest.DialHTTPFrom(t, srv, "127.0.0.2").ListTools(t)

	held[0].Body.Close()
	deadline := time.Now().Add(callTimeout)
	for {
		resp := openListen(t, srv)
		if resp.StatusCode == http.StatusOK {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no listen stream admitted after one of the %d closed: status %d", perAddress, resp.StatusCode)
		}
	}
}

func TestShouldCapTheConnectionsOfOneAddress(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	srv := startHTTP(t, in, "http", "MCPAUTH_MAX_CONNS_PER_ADDRESS=4")
	addr := strings.TrimPrefix(srv.URL, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// served reports whether the server answers a request on c (rather than closing it).
	served := func(c net.Conn) bool {
		_ = c.SetDeadline(time.Now().Add(callTimeout))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	var held []net.Conn
	for i := range 4 {
		c := dial()
		if !served(c) {
			t.Fatalf("connection %d of 4 was not served", i+1)
		}
		held = append(held, c)
	}
	if served(dial()) {
		t.Fatal("a fifth connection from the same address was served")
	}
	// A connection from another address is, and so is a new one once one of the four closes.
	other := mcptest.DialHTTPFrom(t, srv, "127.0.0.2")
	other.ListTools(t)
	held[0].Close()
	deadline := time.Now().Add(callTimeout)
	for !served(dial()) {
		if time.Now().After(deadline) {
			t.Fatal("no connection was served after one of the four closed")
		}
	}
}

func TestShouldDropAnSSEStreamThatStopsReading(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	srv := startHTTP(t, in, "http", "MCPAUTH_HTTP_WRITE_TIMEOUT=1s")
	// A raw connection with a small receive buffer that reads the endpoint event and then
	// nothing more.
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	_ = c.SetReadDeadline(time.Now().Add(callTimeout))
	if _, err := io.WriteString(c, "GET /sse HTTP/1.1\r\nHost: "+c.RemoteAddr().String()+"\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if status, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("GET /sse: %q %v", status, err)
	}
	sid := ""
	for sid == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the endpoint event: %v", err)
		}
		if _, after, ok := strings.Cut(line, "sessionId="); ok {
			sid = strings.TrimSpace(after)
		}
	}
	// Answers pile up on the stream nobody reads; the server must drop it, and its session.
	message := srv.URL + "/message?sessionId=" + sid
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	deadline := time.Now().Add(callTimeout)
	for {
		r := mcptest.Post(t, message, "", list)
		if r.Status == http.StatusNotFound {
			break // the stream was dropped: its session is gone
		}
		if r.Status != http.StatusAccepted {
			t.Fatalf("POST /message: status %d: %s", r.Status, r.Body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the unread stream was still open after %s", callTimeout)
		}
	}
}
