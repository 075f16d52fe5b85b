package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// protocolVersion is the MCP version the sessions negotiate: the latest one with
// initialize and Mcp-Session-Id (2026-07-28 dropped protocol sessions).
const protocolVersion = "2025-11-25"

// client is a lean streamable-HTTP MCP client of one server: raw net/http with keep-alive
// (one connection per session), request bodies built by hand, responses read as JSON or as a
// single-event SSE stream. It does only what the load needs, so that it takes as little of
// the CPU the server shares as it can.
type client struct {
	endpoint *url.URL // http://127.0.0.1:PORT/mcp
	rt       *http.Transport
}

func newClient(baseURL string, sessions int) (*client, error) {
	u, err := url.Parse(baseURL + "/mcp")
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", baseURL, err)
	}
	rt := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          sessions + 16,
		MaxIdleConnsPerHost:   sessions + 16,
		IdleConnTimeout:       5 * time.Minute,
		ResponseHeaderTimeout: 60 * time.Second,
		DisableCompression:    true,
	}
	return &client{endpoint: u, rt: rt}, nil
}

func (c *client) close() { c.rt.CloseIdleConnections() }

// session is one MCP session: its id, its bearer token, and the headers of its requests.
type session struct {
	c      *client
	id     string
	header http.Header
	nextID atomic.Int64 // setup calls may share a session (the owner's)
}

// open initializes a session (anonymously: initialize needs no token) and sends
// notifications/initialized.
func (c *client) open(ctx context.Context) (*session, error) {
	s := &session{c: c, header: http.Header{
		"Content-Type":         {"application/json"},
		"Accept":               {"application/json, text/event-stream"},
		"Mcp-Protocol-Version": {protocolVersion},
	}}
	init := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"` + protocolVersion +
		`","capabilities":{},"clientInfo":{"name":"mcpauth-load","version":"1.0"}}}`
	var buf bytes.Buffer
	resp, err := s.post(ctx, []byte(init), &buf)
	if err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	if resp.status != http.StatusOK {
		return nil, fmt.Errorf("initialize: HTTP %d: %s", resp.status, short(buf.Bytes()))
	}
	if s.id = resp.sessionID; s.id == "" {
		return nil, errors.New("initialize: no Mcp-Session-Id in the answer")
	}
	s.header["Mcp-Session-Id"] = []string{s.id}
	resp, err = s.post(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), &buf)
	if err != nil {
		return nil, fmt.Errorf("notifications/initialized: %w", err)
	}
	if resp.status != http.StatusAccepted && resp.status != http.StatusOK {
		return nil, fmt.Errorf("notifications/initialized: HTTP %d: %s", resp.status, short(buf.Bytes()))
	}
	return s, nil
}

// setBearer makes the session send token with every later request.
func (s *session) setBearer(token string) { s.header["Authorization"] = []string{"Bearer " + token} }

type postResult struct {
	status      int
	contentType string
	sessionID   string
}

// post sends one JSON-RPC message and reads the whole answer into buf.
func (s *session) post(ctx context.Context, body []byte, buf *bytes.Buffer) (postResult, error) {
	req := &http.Request{
		Method:        http.MethodPost,
		URL:           s.c.endpoint,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        s.header, // read-only from here on: never changed while a call is out
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Host:          s.c.endpoint.Host,
	}
	resp, err := s.c.rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return postResult{}, err
	}
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return postResult{}, fmt.Errorf("read answer: %w", err)
	}
	return postResult{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"),
		sessionID: resp.Header.Get("Mcp-Session-Id")}, nil
}

// callBody is a tools/call request with the given id.
type callBody struct{ prefix, suffix []byte }

func newCallBody(tool, args string) callBody {
	name, _ := json.Marshal(tool)
	return callBody{prefix: []byte(`{"jsonrpc":"2.0","id":`),
		suffix: []byte(`,"method":"tools/call","params":{"name":` + string(name) + `,"arguments":` + args + `}}`)}
}

func (b callBody) with(dst []byte, id int64) []byte {
	dst = append(dst[:0], b.prefix...)
	dst = strconv.AppendInt(dst, id, 10)
	return append(dst, b.suffix...)
}

// reply is the part of a JSON-RPC answer that says whether a tool call worked.
type reply struct {
	Result *struct {
		IsError           bool            `json:"isError"`
		StructuredContent json.RawMessage `json:"structuredContent"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// callError is a failed call, by kind: "http_401", "jsonrpc_error", "tool_error", "transport",
// "bad_answer".
type callError struct {
	kind   string
	detail string
}

func (e *callError) Error() string { return e.kind + ": " + e.detail }

// check reads a tools/call answer: nil for a result that is not an error.
func check(res postResult, body []byte, r *reply) *callError {
	if res.status != http.StatusOK {
		return &callError{kind: "http_" + strconv.Itoa(res.status), detail: short(body)}
	}
	msg, err := jsonPayload(res.contentType, body)
	if err != nil {
		return &callError{kind: "bad_answer", detail: err.Error()}
	}
	*r = reply{}
	if err := json.Unmarshal(msg, r); err != nil {
		return &callError{kind: "bad_answer", detail: err.Error() + ": " + short(msg)}
	}
	switch {
	case r.Error != nil:
		return &callError{kind: "jsonrpc_error", detail: fmt.Sprintf("%d %s", r.Error.Code, r.Error.Message)}
	case r.Result == nil:
		return &callError{kind: "bad_answer", detail: "neither result nor error: " + short(msg)}
	case r.Result.IsError:
		return &callError{kind: "tool_error", detail: short(r.Result.StructuredContent)}
	}
	return nil
}

// jsonPayload is the JSON-RPC message of an answer: the body itself, or the data of the last
// event of an SSE stream (notifications may come before the response).
func jsonPayload(contentType string, body []byte) ([]byte, error) {
	if !strings.HasPrefix(contentType, "text/event-stream") {
		return body, nil
	}
	var last, cur []byte
	for line := range bytes.Lines(body) {
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if cur != nil {
				last, cur = cur, nil
			}
		case bytes.HasPrefix(line, []byte("data:")):
			data := bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))
			if cur != nil {
				cur = append(cur, '\n')
			}
			cur = append(cur, data...)
		}
	}
	if cur != nil {
		last = cur
	}
	if last == nil {
		return nil, errors.New("an SSE answer without data")
	}
	return last, nil
}

// callTool is the unhurried call for setup: it returns the tool's structured result.
func (s *session) callTool(ctx context.Context, tool string, args any) (json.RawMessage, error) {
	a, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	res, err := s.post(ctx, newCallBody(tool, string(a)).with(nil, s.nextID.Add(1)), &buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	var r reply
	if cerr := check(res, buf.Bytes(), &r); cerr != nil {
		return nil, fmt.Errorf("%s: %w", tool, cerr)
	}
	return r.Result.StructuredContent, nil
}

func short(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
