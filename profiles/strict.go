package profiles

import (
	"fmt"
	"reflect"
	"slices"
	"sync"

	"go.yaml.in/yaml/v3"
)

// unknownKeys reports every mapping key of the node tree n that the Go type
// t has no field for, in the words of the yaml package's own strict decoder
// ("line N: field K not found in type T"), so that messages read the same.
//
// Why not the library's KnownFields: it works only when decoding straight
// from bytes, and yaml.Node.Decode drops it (go-yaml #460). Decoding strictly
// and parsing a second time for positions doubled the load time of a large
// fleet; one parse, this walk and a plain Node.Decode give the same
// strictness for about half the work.
func unknownKeys(n *yaml.Node, t reflect.Type) []string {
	var out []string
	walkKnown(n, t, &out)
	return out
}

func walkKnown(n *yaml.Node, t reflect.Type, out *[]string) {
	if n == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType {
		// Raw YAML (cloud_config's values): any key is the user's.
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkKnown(c, t, out)
		}
	case yaml.AliasNode:
		walkKnown(n.Alias, t, out)
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for _, c := range n.Content {
				walkKnown(c, t.Elem(), out)
			}
		}
	case yaml.MappingNode:
		switch t.Kind() {
		case reflect.Map:
			for i := 1; i < len(n.Content); i += 2 {
				walkKnown(n.Content[i], t.Elem(), out)
			}
		case reflect.Struct:
			fields := fieldTypes(t)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Tag == "!!merge" {
					walkKnown(n.Content[i+1], t, out)
					continue
				}
				ft, ok := fields[k.Value]
				if !ok {
					*out = append(*out, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t.String()))
					continue
				}
				walkKnown(n.Content[i+1], ft, out)
			}
		}
	}
}

var nodeType = reflect.TypeFor[yaml.Node]()

// fieldCache maps a struct type to its YAML keys and their types.
var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

func fieldTypes(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for _, f := range yamlFields(t) {
		m[f.key] = f.sf.Type
	}
	fieldCache.Store(t, m)
	return m
}

// sortByLine orders "line N: …" messages by N, as the strict decoder,
// which reports in document order, would.
func sortByLine(msgs []string) {
	lineOf := func(s string) int {
		var n int
		fmt.Sscanf(s, "line %d:", &n)
		return n
	}
	slices.SortStableFunc(msgs, func(a, b string) int { return lineOf(a) - lineOf(b) })
}
