package mcp

import (
	"bytes"
	"encoding/json/jsontext"
	"errors"
	"io"
	"sync"
	"unicode/utf8"
)

// peekInto returns the methods of a JSON-RPC message or batch and the tool names of its
// tools/call requests, or nothing if the body is not JSON that encoding/json (mcp-go's parser)
// would decode into messages. It reads only those fields: every guarded HTTP request pays for
// it, and reflection-based decoding cost twice as much.
//
// It reads the body as encoding/json reads it into a struct: member names match
// case-insensitively (strings.EqualFold), the last match wins, null leaves a field as it was,
// duplicate names and invalid UTF-8 are accepted; a value of the wrong type makes the whole
// body unreadable. Where the two could still differ it answers nothing, which is the strict
// side (a token is then required, and the middleware alone judges the call): FuzzPeekJSONRPC
// checks exactly that against encoding/json.
//
// Two readers serve the one reading (peek). The bodies sessions send (strings of printable
// ASCII without escapes, shallow) are read by scanned, which checks the JSON grammar itself in
// one pass over the bytes: the streaming decoder's validation cost a guarded call more than
// the rest of the peek. Anything else — escapes, other bytes, deep nesting, any body that is
// not JSON or not messages — is read again by the decoder (jsontext, encoding/json's own
// tokenizer), whose answer stands. FuzzPeekScanAsDecoder checks that the two agree wherever
// the scanner answers.
//
// It appends to methods and calls, which come empty with room for one message's (the guard's:
// no allocation), and takes the names in known (the guard's: the usual methods and its
// policy's tools; methodNames when nil) as they are, without copying them out of the body.
func peekInto(body []byte, known map[string]string, methods, calls []string) ([]string, []string) {
	p := peekers.Get().(*peeker)
	defer p.release()
	p.known = known
	if known == nil {
		p.known = methodNames
	}
	if m, c, ok := peek(p.scanner(body), methods, calls); ok {
		return m, c
	}
	if m, c, ok := peek(p.decoder(body), methods, calls); ok {
		return m, c
	}
	return nil, nil
}

// scanner starts the scanner on body.
func (p *peeker) scanner(body []byte) *scanned {
	p.scan = scan{b: body}
	return (*scanned)(p)
}

// decoder starts the decoder on body.
func (p *peeker) decoder(body []byte) *decoded {
	// From a bytes.Buffer the decoder reads the body in place, without copying it.
	p.body, p.decoding = *bytes.NewBuffer(body), true
	p.d.Reset(&p.body, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	return (*decoded)(p)
}

// jsonValues is what the peek reads a body with: the next value's kind, and reading it. An
// object is read as open, then member until it reports no more (each member's value read in
// between); an array likewise with element.
type jsonValues interface {
	kind() byte                                     // the next value's first byte ('0' for a number); 0 if none
	null() bool                                     // reads null
	open() bool                                     // reads '{' or '['
	member(first bool) (name []byte, more, ok bool) // the next member's name (valid until the next read), or the object's end
	element(first bool) (more, ok bool)             // whether an element follows, or the array's end
	str() (string, bool)                            // reads a string
	skip() bool                                     // reads any value
	end() bool                                      // reads the end of the body: nothing but whitespace is left
}

// peek reads one message or a batch with t; ok is false if it is not that.
func peek(t jsonValues, methods, calls []string) (_, _ []string, ok bool) {
	var one [1]peekedMessage // a batch is rare: one message needs no allocation
	msgs := one[:0]
	if t.kind() == '[' {
		if !t.open() {
			return nil, nil, false
		}
		for first := true; ; first = false {
			more, ok := t.element(first)
			if !ok {
				return nil, nil, false
			}
			if !more {
				break
			}
			m, ok := message(t)
			if !ok {
				return nil, nil, false
			}
			msgs = append(msgs, m)
		}
	} else {
		m, ok := message(t)
		if !ok {
			return nil, nil, false
		}
		msgs = append(msgs, m)
	}
	if !t.end() { // one value, then nothing
		return nil, nil, false
	}
	for _, m := range msgs {
		methods = append(methods, m.method)
		if m.method == "tools/call" {
			calls = append(calls, m.name)
		}
	}
	if len(calls) == 0 {
		calls = nil // no message calls a tool
	}
	return methods, calls, true
}

type peekedMessage struct{ method, name string }

// message reads one message: an object, or null (a message with no fields).
func message(t jsonValues) (m peekedMessage, ok bool) {
	switch t.kind() {
	case 'n':
		return m, t.null()
	case '{':
	default:
		return m, false
	}
	return m, object(t, func(name []byte) bool {
		switch {
		case sameName(name, nameMethod):
			return stringInto(t, &m.method)
		case sameName(name, nameParams):
			switch t.kind() {
			case 'n':
				return t.null()
			case '{':
				return object(t, func(name []byte) bool {
					if sameName(name, nameName) {
						return stringInto(t, &m.name)
					}
					return t.skip()
				})
			}
			return false
		}
		return t.skip()
	})
}

var nameMethod, nameParams, nameName = []byte("method"), []byte("params"), []byte("name")

// sameName is encoding/json's match of a member name with one of ours (plain ASCII):
// strings.EqualFold. A name of another length matches only through a multi-byte rune that
// folds to ASCII (ſ to s, the Kelvin sign to k), so a plain ASCII one of another length, the
// usual "jsonrpc" and "id", is told apart by its length, not folded byte by byte.
func sameName(name, ours []byte) bool {
	if len(name) != len(ours) && isASCII(name) {
		return false
	}
	return bytes.EqualFold(name, ours)
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// object reads an object, calling member for each name with t at its value, which member
// must read.
func object(t jsonValues, member func(name []byte) bool) bool {
	if !t.open() {
		return false
	}
	for first := true; ; first = false {
		name, more, ok := t.member(first)
		if !ok || !more {
			return ok
		}
		if !member(name) {
			return false
		}
	}
}

// stringInto reads a string into dst; null leaves dst as it was; anything else is a type error.
func stringInto(t jsonValues, dst *string) bool {
	switch t.kind() {
	case 'n':
		return t.null()
	case '"':
		v, ok := t.str()
		if ok {
			*dst = v
		}
		return ok
	}
	return false
}

type peeker struct {
	scan     scan
	body     bytes.Buffer
	d        jsontext.Decoder
	name     []byte            // the member name being read, reused
	known    map[string]string // names taken as they are, for one peek
	decoding bool              // the decoder holds the body
}

var peekers = sync.Pool{New: func() any { return new(peeker) }}

// release returns p to the pool holding nothing of the body (which may be megabytes).
func (p *peeker) release() {
	p.known, p.scan = nil, scan{}
	if p.decoding {
		p.body, p.decoding = bytes.Buffer{}, false
		p.d.Reset(&p.body)
	}
	peekers.Put(p)
}

// intern is the string of a plain string's content: the known name itself when it is one
// (no allocation: the usual names).
func (p *peeker) intern(raw []byte) string {
	if known, ok := p.known[string(raw)]; ok {
		return known
	}
	return string(raw)
}

// plainASCII reports whether a JSON string's content is printable ASCII without escapes: then
// its bytes are its value.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == '\\' {
			return false
		}
	}
	return true
}

// decoded reads with the streaming decoder, which reads any JSON.
type decoded peeker

func (p *decoded) kind() byte { return byte(p.d.PeekKind()) }

// token reads the next token: null, or a delimiter the caller saw with kind.
func (p *decoded) token() bool {
	_, err := p.d.ReadToken()
	return err == nil
}

func (p *decoded) null() bool { return p.token() }

func (p *decoded) open() bool { return p.token() }

func (p *decoded) member(bool) (name []byte, more, ok bool) {
	switch p.d.PeekKind() {
	case '}':
		return nil, false, p.token()
	case '"':
	default:
		return nil, false, false
	}
	raw, err := p.d.ReadValue() // a name, read raw: no allocation
	if err != nil {
		return nil, false, false
	}
	name = raw[1 : len(raw)-1] // printable ASCII without escapes: its bytes are the name
	if !plainASCII(name) {
		if name, err = jsontext.AppendUnquote(p.name[:0], raw); err != nil {
			return nil, false, false
		}
		p.name = name
	}
	return name, true, true
}

func (p *decoded) element(bool) (more, ok bool) {
	if p.d.PeekKind() == ']' {
		return false, p.token()
	}
	return true, true
}

func (p *decoded) str() (string, bool) {
	v, err := p.d.ReadValue()
	if err != nil {
		return "", false
	}
	if raw := v[1 : len(v)-1]; plainASCII(raw) {
		return (*peeker)(p).intern(raw), true
	}
	// Escapes or other than ASCII: read as the decoder reads it (invalid UTF-8 and lone
	// surrogates become U+FFFD, as encoding/json reads them).
	tok, err := jsontext.NewDecoder(bytes.NewReader(v), jsontext.AllowInvalidUTF8(true)).ReadToken()
	if err != nil {
		return "", false
	}
	return tok.String(), true
}

func (p *decoded) skip() bool { return p.d.SkipValue() == nil }

func (p *decoded) end() bool {
	_, err := p.d.ReadToken()
	return errors.Is(err, io.EOF)
}

// scan is the scanner's place in the body.
type scan struct {
	b     []byte
	i     int
	depth int
}

// maxScanDepth is the deepest nesting the scanner reads (a message's arguments are rarely
// deeper); a deeper body is the decoder's.
const maxScanDepth = 16

// scanned reads with the scanner: JSON whose strings are printable ASCII without escapes,
// nested at most maxScanDepth deep. It checks the grammar of RFC 8259 as it goes, so that a
// body it reads to the end is JSON; it fails on anything else.
type scanned peeker

func (p *scanned) ws() {
	s := &p.scan
	for s.i < len(s.b) && s.b[s.i] <= ' ' {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (p *scanned) kind() byte {
	p.ws()
	s := &p.scan
	if s.i == len(s.b) {
		return 0
	}
	if c := s.b[s.i]; c != '-' && (c < '0' || c > '9') {
		return c
	}
	return '0'
}

func (p *scanned) literal(lit string) bool {
	s := &p.scan
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

func (p *scanned) null() bool { return p.kind() == 'n' && p.literal("null") }

func (p *scanned) open() bool {
	s := &p.scan
	if c := p.kind(); (c != '{' && c != '[') || s.depth == maxScanDepth {
		return false
	}
	s.i++
	s.depth++
	return true
}

// next reads what follows a container's value: its end (close), or a comma unless first.
func (p *scanned) next(first bool, close byte) (more, ok bool) {
	p.ws()
	s := &p.scan
	switch {
	case s.i == len(s.b):
		return false, false
	case s.b[s.i] == close:
		s.i++
		s.depth--
		return false, true
	case first:
		return true, true
	case s.b[s.i] != ',':
		return false, false
	}
	s.i++
	return true, true
}

func (p *scanned) member(first bool) (name []byte, more, ok bool) {
	if more, ok = p.next(first, '}'); !more {
		return nil, false, ok
	}
	if p.kind() != '"' {
		return nil, false, false
	}
	if name, ok = p.plain(); !ok {
		return nil, false, false
	}
	p.ws()
	s := &p.scan
	if s.i == len(s.b) || s.b[s.i] != ':' {
		return nil, false, false
	}
	s.i++
	return name, true, true
}

func (p *scanned) element(first bool) (more, ok bool) { return p.next(first, ']') }

// plain reads a string of printable ASCII without escapes, returning its content.
func (p *scanned) plain() ([]byte, bool) {
	s := &p.scan
	i := s.i + 1
	for i < len(s.b) && plainByte[s.b[i]] {
		i++
	}
	if i == len(s.b) || s.b[i] != '"' { // the end, an escape or another byte
		return nil, false
	}
	raw := s.b[s.i+1 : i]
	s.i = i + 1
	return raw, true
}

// plainByte: the bytes a plain string holds (printable ASCII but the quote and the backslash).
var plainByte = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (p *scanned) str() (string, bool) {
	raw, ok := p.plain()
	if !ok {
		return "", false
	}
	return (*peeker)(p).intern(raw), true
}

func (p *scanned) skip() bool {
	switch p.kind() {
	case '{':
		return object(p, func([]byte) bool { return p.skip() })
	case '[':
		if !p.open() {
			return false
		}
		for first := true; ; first = false {
			more, ok := p.element(first)
			if !ok || !more {
				return ok
			}
			if !p.skip() {
				return false
			}
		}
	case '"':
		_, ok := p.plain()
		return ok
	case 'n':
		return p.literal("null")
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case '0':
		return p.number()
	}
	return false
}

// number reads a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *scanned) number() bool {
	s := &p.scan
	i := s.i
	if i < len(s.b) && s.b[i] == '-' {
		i++
	}
	switch {
	case i < len(s.b) && s.b[i] == '0':
		i++
	case i < len(s.b) && s.b[i] >= '1' && s.b[i] <= '9':
		i = digits(s.b, i)
	default:
		return false
	}
	if i < len(s.b) && s.b[i] == '.' {
		if j := digits(s.b, i+1); j > i+1 {
			i = j
		} else {
			return false
		}
	}
	if i < len(s.b) && (s.b[i] == 'e' || s.b[i] == 'E') {
		i++
		if i < len(s.b) && (s.b[i] == '+' || s.b[i] == '-') {
			i++
		}
		if j := digits(s.b, i); j > i {
			i = j
		} else {
			return false
		}
	}
	s.i = i
	return true
}

// digits returns the index after the decimal digits of b from i.
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func (p *scanned) end() bool {
	p.ws()
	return p.scan.i == len(p.scan.b)
}

// methodNames interns the methods every session sends, so that peeking at them allocates
// nothing (a guard adds its policy's tools: Guard.names).
var methodNames = func() map[string]string {
	m := map[string]string{}
	for _, name := range []string{"initialize", "ping", "tools/list", "tools/call", "notifications/initialized",
		"notifications/cancelled", "resources/list", "prompts/list"} {
		m[name] = name
	}
	return m
}()
