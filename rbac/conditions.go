package rbac

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/bduf/mcpauth/apierr"
)

// Limits on a custom role's conditions.
const maxSourceCIDRs = 64

// The condition names used in deny reasons ("condition not met: source IP").
const (
	condOwner      = "owner"
	condSourceIP   = "source IP"
	condTimeWindow = "time window"
)

var weekdayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// IsZero reports whether c sets no condition.
func (c Conditions) IsZero() bool {
	return !c.OwnerOnly && len(c.SourceCIDRs) == 0 && c.TimeWindow == nil
}

// compiledConditions are a role's Conditions parsed once, for evaluation per request.
type compiledConditions struct {
	ownerOnly bool
	cidrs     bool // SourceCIDRs was set: the source IP must be in one of prefixes
	prefixes  []netip.Prefix
	window    *compiledWindow
	broken    string // a stored condition that does not parse never holds: its name
}

type compiledWindow struct {
	start, end int // minutes after midnight UTC; end < start wraps midnight
	days       [7]bool
	anyDay     bool
}

// compileConditions parses c. A condition that does not parse (stored data that bypassed
// validation) is kept as broken: it never holds, so the role grants nothing.
func compileConditions(c Conditions) compiledConditions {
	cc := compiledConditions{ownerOnly: c.OwnerOnly}
	if len(c.SourceCIDRs) > 0 {
		cc.cidrs = true
		prefixes, err := parseCIDRs(c.SourceCIDRs)
		if err != nil {
			cc.broken = condSourceIP
		}
		cc.prefixes = prefixes
	}
	if c.TimeWindow != nil {
		w, err := parseWindow(*c.TimeWindow)
		if err != nil && cc.broken == "" {
			cc.broken = condTimeWindow
		}
		cc.window = w
	}
	return cc
}

// unmet returns the name of the first condition r does not meet, or "" when all hold. at is the
// request's time (never zero).
func (c *compiledConditions) unmet(r *Request, at time.Time) string {
	if c.broken != "" {
		return c.broken
	}
	if c.ownerOnly && (r.Attributes.OwnerID == "" || r.Attributes.OwnerID != r.Subject) {
		return condOwner
	}
	if c.cidrs && !inPrefixes(r.Attributes.SourceIP, c.prefixes) {
		return condSourceIP
	}
	if c.window != nil && !c.window.contains(at) {
		return condTimeWindow
	}
	return ""
}

func inPrefixes(ip netip.Addr, prefixes []netip.Prefix) bool {
	if !ip.IsValid() || ip.IsUnspecified() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// contains reports whether t falls in the window. On a window that wraps midnight, the weekday
// that counts is the one the window started on (Friday 22:00-06:00 includes Saturday 05:00).
func (w *compiledWindow) contains(t time.Time) bool {
	t = t.UTC()
	m := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	switch {
	case w.start < w.end:
		if m < w.start || m >= w.end {
			return false
		}
	case m >= w.start:
	case m < w.end:
		day = (day + 6) % 7 // the window began the day before
	default:
		return false
	}
	return w.anyDay || w.days[day]
}

func parseCIDRs(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// parseHHMM parses "HH:MM" (two digits each, 00:00 to 23:59) into minutes after midnight.
func parseHHMM(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	d := func(c byte) int {
		if c < '0' || c > '9' {
			return -100
		}
		return int(c - '0')
	}
	h, m := d(s[0])*10+d(s[1]), d(s[3])*10+d(s[4])
	if h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	return h*60 + m, nil
}

func parseWindow(tw TimeWindow) (*compiledWindow, error) {
	start, err := parseHHMM(tw.Start)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	end, err := parseHHMM(tw.End)
	if err != nil {
		return nil, fmt.Errorf("end: %w", err)
	}
	if start == end {
		return nil, fmt.Errorf("start and end are the same time: the window would be empty")
	}
	w := &compiledWindow{start: start, end: end, anyDay: len(tw.Weekdays) == 0}
	for _, name := range tw.Weekdays {
		d, ok := weekdayNames[name]
		if !ok {
			return nil, fmt.Errorf("weekday %q is not one of mon, tue, wed, thu, fri, sat, sun", name)
		}
		w.days[d] = true
	}
	return w, nil
}

// normalizeConditions validates c for a new role and returns it in canonical form (prefixes
// masked, weekdays lower-case, de-duplicated, Monday first). Errors are INVALID_ARGUMENT.
func normalizeConditions(c Conditions) (Conditions, error) {
	out := Conditions{OwnerOnly: c.OwnerOnly}
	if len(c.SourceCIDRs) > maxSourceCIDRs {
		return out, apierr.Field("conditions.source_cidrs", "at most %d prefixes", maxSourceCIDRs)
	}
	for _, s := range c.SourceCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return out, apierr.Field("conditions.source_cidrs", "%q is not a CIDR prefix such as 10.0.0.0/8", clip(s))
		}
		if q := p.Masked().String(); !slices.Contains(out.SourceCIDRs, q) {
			out.SourceCIDRs = append(out.SourceCIDRs, q)
		}
	}
	if tw := c.TimeWindow; tw != nil {
		n := TimeWindow{Start: strings.TrimSpace(tw.Start), End: strings.TrimSpace(tw.End)}
		var days [7]bool
		for _, d := range tw.Weekdays {
			wd, ok := weekdayNames[strings.ToLower(strings.TrimSpace(d))]
			if !ok {
				return out, apierr.Field("conditions.time_window", "weekday %q is not one of mon, tue, wed, thu, fri, sat, sun", clip(d))
			}
			days[wd] = true
		}
		for i := range 7 {
			wd := time.Weekday((i + 1) % 7) // Monday first
			if days[wd] {
				n.Weekdays = append(n.Weekdays, strings.ToLower(wd.String()[:3]))
			}
		}
		if _, err := parseWindow(n); err != nil {
			return out, apierr.Field("conditions.time_window", "%s", clip(err.Error()))
		}
		out.TimeWindow = &n
	}
	return out, nil
}

// clip shortens caller input quoted back in an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
