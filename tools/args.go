package tools

// A tool's arguments are a struct, and its fields' tags say everything about them once: the
// published JSON Schema and the checks run before the handler are both derived from them.
//
//	type apiKeyCreateArgs struct {
//		Name        string   `json:"name" desc:"What the key is for." required:"true" max:"apikey_name"`
//		Permissions []string `json:"permissions" desc:"..." required:"true" min:"1" max:"apikey_permissions" itemmax:"permission"`
//		stepUpArgs           // an embedded struct contributes its fields
//	}
//
// Tags: json (the argument's name), desc (its description, required), required:"true", max and
// itemmax (a limit's name in the limits table: never a number), min (a number: a list's
// minItems, a number's minimum, an object's minProperties), enum (comma-separated values).
// Types: string, bool, int (JSON "integer"), []string, a pointer to one of them (absent is nil),
// a struct of this package or an unnamed one (an object whose properties are derived the same
// way), or another package's struct (an object decoded by its own type, published as an object). A tag or type
// outside this is a programming error: argsOf panics, and TestShouldBuildEveryTool finds it.
//
// What the tags cannot say (an RFC 3339 time, a permission pattern, "email or username, not
// both") the handler checks.

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bduf/mcpauth/apierr"
)

// argKind is what an argument is in JSON.
type argKind int

const (
	argString argKind = iota
	argBoolean
	argNumber  // a Go int, published as JSON Schema "integer" (the decoder refuses a fraction)
	argStrings // a list of strings
	argObject  // a struct of this package (or unnamed): its properties are derived from its fields
	argOpaque  // another package's struct (rbac.Conditions), decoded strictly by its own type
)

// argField is one argument, as its tags declare it.
type argField struct {
	name     string
	index    []int // reflect's field index, through embedded structs
	kind     argKind
	pointer  bool // absent is nil
	desc     string
	required bool
	// min and max bound a string's length in characters (max only), a list's items, a number,
	// an object's properties (min only); itemMax each item's length of a list.
	min, max       int
	hasMin, hasMax bool
	itemMax        int
	enum           []string
	object         *argSpec // argObject
}

// argSpec is the arguments of a tool (or of an object argument): its fields in declaration
// order.
type argSpec struct {
	typ    reflect.Type
	fields []argField
}

// argTags are the struct tags an argument field may carry; any other key is a typo.
var argTags = []string{"json", "desc", "required", "max", "min", "itemmax", "enum"}

var thisPackage = reflect.TypeFor[argSpec]().PkgPath()

// argsOf derives the arguments of struct type t from its fields' tags. It panics on a tag or
// type it does not know: tools are declared in code, and a mistake must stop their building.
func argsOf(t reflect.Type) *argSpec {
	if t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("tools: arguments %v: not a struct", t))
	}
	s := &argSpec{typ: t}
	s.collect(t, nil)
	seen := map[string]bool{}
	for _, f := range s.fields {
		if seen[f.name] {
			panic(fmt.Sprintf("tools: arguments %v: two fields named %q", t, f.name))
		}
		seen[f.name] = true
	}
	return s
}

func (s *argSpec) collect(t reflect.Type, index []int) {
	for i := range t.NumField() {
		f := t.Field(i)
		at := append(slices.Clip(index), i)
		if f.Anonymous {
			if f.Tag != "" || f.Type.Kind() != reflect.Struct {
				panic(fmt.Sprintf("tools: arguments %v: embedded %s must be an untagged struct (its fields are arguments)", s.typ, f.Name))
			}
			s.collect(f.Type, at)
			continue
		}
		if !f.IsExported() { // not decoded from JSON: not an argument
			continue
		}
		s.fields = append(s.fields, s.field(f, at))
	}
}

// field derives one argument from its struct field.
func (s *argSpec) field(f reflect.StructField, index []int) argField {
	bad := func(format string, args ...any) {
		panic(fmt.Sprintf("tools: arguments %v, field %s: %s", s.typ, f.Name, fmt.Sprintf(format, args...)))
	}
	tags, err := parseTags(f.Tag)
	if err != nil {
		bad("%v", err)
	}
	name, _, _ := strings.Cut(tags["json"], ",")
	a := argField{name: name, index: index, desc: tags["desc"]}
	if name == "" || name == "-" {
		bad("needs a json name")
	}
	if a.desc == "" {
		bad(`needs a desc:"..." (every argument is described to the client)`)
	}
	typ := f.Type
	if typ.Kind() == reflect.Pointer {
		typ, a.pointer = typ.Elem(), true
	}
	switch {
	case typ.Kind() == reflect.String:
		a.kind = argString
	case typ.Kind() == reflect.Bool:
		a.kind = argBoolean
	case typ.Kind() == reflect.Int:
		a.kind = argNumber
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.String:
		a.kind = argStrings
	case typ.Kind() == reflect.Struct && typ.Name() != "" && typ.PkgPath() != thisPackage:
		a.kind = argOpaque
	case typ.Kind() == reflect.Struct:
		a.kind, a.object = argObject, argsOf(typ)
	default:
		bad("type %v is not an argument type (string, bool, int, []string, a struct, or a pointer to one)", f.Type)
	}
	if v, ok := tags["required"]; ok {
		if v != "true" {
			bad(`required:%q: the tag is required:"true" or absent`, v)
		}
		if !a.pointer && (a.kind == argBoolean || a.kind == argNumber) {
			bad("a required %v cannot be told absent: make it a pointer", typ)
		}
		a.required = true
	}
	allowed := func(tag string, kinds ...argKind) bool {
		_, ok := tags[tag]
		if ok && !slices.Contains(kinds, a.kind) {
			bad("%s does not apply to a %v", tag, f.Type)
		}
		return ok
	}
	if allowed("max", argString, argStrings, argNumber) {
		a.max, a.hasMax = limitNamed(tags["max"], bad), true
	}
	if allowed("itemmax", argStrings) {
		a.itemMax = limitNamed(tags["itemmax"], bad)
	}
	if allowed("min", argStrings, argNumber, argObject) {
		n, err := strconv.Atoi(tags["min"])
		if err != nil || n < 0 {
			bad("min:%q is not a number of at least 0", tags["min"])
		}
		a.min, a.hasMin = n, true
	}
	if allowed("enum", argString) {
		a.enum = strings.Split(tags["enum"], ",")
		if slices.Contains(a.enum, "") {
			bad("enum:%q has an empty value", tags["enum"])
		}
	}
	if a.hasMin && a.hasMax && a.min > a.max {
		bad("min %d is above max %d", a.min, a.max)
	}
	return a
}

// limitNamed resolves a limit's name through the limits table.
func limitNamed(name string, bad func(string, ...any)) int {
	n, ok := limits[name]
	if !ok {
		bad("%q is not a limit of the limits table (limits.go); limits come from constants, not literals", name)
	}
	return n
}

// parseTags reads a struct tag's key:"value" pairs (as reflect.StructTag.Get does), refusing
// what Get would silently ignore: bad syntax, a key given twice, a key no argument takes.
func parseTags(tag reflect.StructTag) (map[string]string, error) {
	out := map[string]string{}
	rest := strings.TrimLeft(string(tag), " ")
	for rest != "" {
		key, after, ok := strings.Cut(rest, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \t\"") || !strings.HasPrefix(after, `"`) {
			return nil, fmt.Errorf("malformed tag %q", tag)
		}
		end := 1
		for end < len(after) && after[end] != '"' {
			if after[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(after) {
			return nil, fmt.Errorf("malformed tag %q: unterminated value of %s", tag, key)
		}
		value, err := strconv.Unquote(after[:end+1])
		if err != nil {
			return nil, fmt.Errorf("malformed tag %q: value of %s: %w", tag, key, err)
		}
		if !slices.Contains(argTags, key) {
			return nil, fmt.Errorf("tag %s is not one of %s", key, strings.Join(argTags, ", "))
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("tag %s given twice", key)
		}
		out[key] = value
		rest = strings.TrimLeft(after[end+1:], " ")
	}
	return out, nil
}

// names are the arguments' names, in declaration order.
func (s *argSpec) names() []string {
	out := make([]string, len(s.fields))
	for i, f := range s.fields {
		out[i] = f.name
	}
	return out
}

// properties are the JSON Schema properties of the arguments, their order and the required ones.
func (s *argSpec) properties() (props map[string]any, order, required []string) {
	props = make(map[string]any, len(s.fields))
	for _, f := range s.fields {
		props[f.name] = f.schema()
		order = append(order, f.name)
		if f.required {
			required = append(required, f.name)
		}
	}
	return props, order, required
}

// schema is the JSON Schema of one argument.
func (f argField) schema() map[string]any {
	m := map[string]any{"description": f.desc}
	switch f.kind {
	case argString:
		m["type"] = "string"
		if f.hasMax {
			m["maxLength"] = f.max
		}
		if f.enum != nil {
			m["enum"] = f.enum
		}
	case argBoolean:
		m["type"] = "boolean"
	case argNumber:
		m["type"] = "integer"
		if f.hasMin {
			m["minimum"] = f.min
		}
		if f.hasMax {
			m["maximum"] = f.max
		}
	case argStrings:
		m["type"] = "array"
		items := map[string]any{"type": "string"}
		if f.itemMax > 0 {
			items["maxLength"] = f.itemMax
		}
		m["items"] = items
		if f.hasMin {
			m["minItems"] = f.min
		}
		if f.hasMax {
			m["maxItems"] = f.max
		}
	case argObject:
		m["type"] = "object"
		props, _, required := f.object.properties()
		m["properties"] = props
		if required != nil {
			m["required"] = required
		}
		m["additionalProperties"] = false
		if f.hasMin {
			m["minProperties"] = f.min
		}
	case argOpaque: // its properties are its own type's business (no constraint, as published so far)
		m["type"], m["properties"] = "object", map[string]any{}
	}
	return m
}

// check runs the checks the tags declare on decoded arguments v (of s's type), naming a field
// with prefix before it (an object argument's fields are "fields.email"). Lengths are counted
// in characters (code points), as JSON Schema's maxLength counts them: a limit in bytes would
// refuse what the published schema allows.
func (s *argSpec) check(v reflect.Value, prefix string) error {
	for _, f := range s.fields {
		if err := f.check(v.FieldByIndex(f.index), prefix+f.name); err != nil {
			return err
		}
	}
	return nil
}

func (f argField) check(v reflect.Value, name string) error {
	if f.pointer {
		if v.IsNil() {
			if f.required {
				return apierr.Field(name, "is required")
			}
			return nil
		}
		v = v.Elem()
	}
	switch f.kind {
	case argString:
		s := v.String()
		if s == "" {
			if f.required {
				return apierr.Field(name, "is required")
			}
			return nil
		}
		if f.hasMax && utf8.RuneCountInString(s) > f.max {
			return apierr.Field(name, "must be at most %d characters", f.max)
		}
		if f.enum != nil && !slices.Contains(f.enum, s) {
			if len(f.enum) == 1 {
				return apierr.Field(name, "must be %q", f.enum[0])
			}
			return apierr.Field(name, "must be one of %s", quoted(f.enum))
		}
	case argNumber:
		n := int(v.Int())
		switch {
		case f.hasMin && f.hasMax && (n < f.min || n > f.max):
			return apierr.Field(name, "must be between %d and %d", f.min, f.max)
		case f.hasMin && n < f.min:
			return apierr.Field(name, "must be at least %d", f.min)
		case f.hasMax && n > f.max:
			return apierr.Field(name, "must be at most %d", f.max)
		}
	case argStrings:
		n := v.Len()
		switch {
		case f.hasMin && f.hasMax && (n < f.min || n > f.max):
			return apierr.Field(name, "give %d to %d %s", f.min, f.max, name)
		case f.hasMin && n < f.min:
			return apierr.Field(name, "give at least %d %s", f.min, name)
		case f.hasMax && n > f.max:
			return apierr.Field(name, "at most %d %s", f.max, name)
		case n == 0 && f.required:
			return apierr.Field(name, "is required")
		}
		for i := range n {
			if f.itemMax > 0 && utf8.RuneCountInString(v.Index(i).String()) > f.itemMax {
				return apierr.Field(name, "each must be at most %d characters", f.itemMax)
			}
		}
	case argObject:
		if v.IsZero() {
			if f.required {
				return apierr.Field(name, "is required")
			}
			return nil
		}
		if f.hasMin {
			given := 0
			for _, of := range f.object.fields {
				if !v.FieldByIndex(of.index).IsZero() {
					given++
				}
			}
			if given < f.min {
				if f.min == 1 {
					return apierr.Field(name, "give at least one of %s", strings.Join(f.object.names(), ", "))
				}
				return apierr.Field(name, "give at least %d of %s", f.min, strings.Join(f.object.names(), ", "))
			}
		}
		return f.object.check(v, name+".")
	case argBoolean, argOpaque:
		if f.required && v.IsZero() {
			return apierr.Field(name, "is required")
		}
	}
	return nil
}

func quoted(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}
