package profiles

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// asJSON converts a YAML document to the JSON value an editor validates.
func asJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestSchemaGolden keeps examples/rackboot.schema.json, which the
// examples' modelines name for yaml-language-server, equal to what
// `rackboot schema` prints.
func TestSchemaGolden(t *testing.T) {
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "../../examples/rackboot.schema.json", b)
}

// draft07 are the keywords of JSON Schema draft-07 (json-schema.org,
// draft-handrews-json-schema-01 and -validation-01).
var draft07 = []string{
	"$schema", "$id", "$ref", "$comment", "title", "description", "default", "readOnly", "writeOnly", "examples",
	"definitions", "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
	"maxLength", "minLength", "pattern", "items", "additionalItems", "maxItems", "minItems", "uniqueItems", "contains",
	"maxProperties", "minProperties", "required", "properties", "patternProperties", "additionalProperties",
	"dependencies", "propertyNames", "if", "then", "else", "allOf", "anyOf", "oneOf", "not", "format",
	"contentMediaType", "contentEncoding",
}

// TestSchemaDraft07: the schema declares draft-07 and uses its keywords
// only, and a $ref stands alone (draft-07 ignores its siblings).
func TestSchemaDraft07(t *testing.T) {
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	if root["$schema"] != "http://json-schema.org/draft-07/schema#" {
		t.Errorf("$schema %v", root["$schema"])
	}
	var walk func(path string, s map[string]any)
	walk = func(path string, s map[string]any) {
		if _, ok := s["$ref"]; ok && len(s) != 1 {
			t.Errorf("%s: $ref with siblings: %v", path, s)
		}
		for k, v := range s {
			if !slices.Contains(draft07, k) {
				t.Errorf("%s: %q is not a draft-07 keyword", path, k)
			}
			switch k {
			case "properties", "definitions", "patternProperties":
				for name, sub := range v.(map[string]any) {
					walk(path+"/"+k+"/"+name, sub.(map[string]any))
				}
			case "enum", "required", "examples", "type", "const", "default":
			default:
				switch v := v.(type) {
				case map[string]any:
					walk(path+"/"+k, v)
				case []any:
					for i, sub := range v {
						if m, ok := sub.(map[string]any); ok {
							walk(fmt.Sprintf("%s/%s/%d", path, k, i), m)
						}
					}
				}
			}
		}
	}
	walk("#", root)
}

func TestSchemaValidatesExamples(t *testing.T) {
	s := compileSchema(t)
	files, _ := filepath.Glob("../examples/*.yaml")
	valid, _ := filepath.Glob("testdata/valid/*.yaml")
	files = append(files, valid...)
	if len(files) < 4 {
		t.Fatalf("only %d example files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(asJSON(t, b)); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSchemaAgreesWithLoader: documents the loader refuses for their keys
// or types, the schema refuses too.
func TestSchemaAgreesWithLoader(t *testing.T) {
	s := compileSchema(t)
	for _, doc := range []string{
		"host: []\n",
		"hosts: [{mac: 52:54:00:00:00:01, hostnmae: x}]\n",
		"hosts: [{hostname: x}]\n",
		"hosts: [{mac: 52:54:00:00}]\n",
		"versions: [{name: v, image: {url: a, sha256: \"" + testSHA + "\"}}]\n",
		"versions: [{name: v, number: 1, image: {url: a, sha256: \"" + testSHA + "\", format: bzip2}}]\n",
		"layouts: [{name: l, disk: {select: biggest}}]\n",
		"layouts: [{name: l, disk: {select: largest}, partitions: [{name: p, size: 1 parsec, type: linux}]}]\n",
		"groups: [{name: g, match: {mac_prefix: \"52:5\"}}]\n",
		"defaults: {users: [{name: Root}]}\n",
		"defaults: {users: [{name: ops, password: hunter2}]}\n",
		"defaults: {network: {dhcp: yes please}}\n",
		"defaults: {installer: {initrd: x}}\n",
		"defaults: {cloud_config: [packages]}\n",
		"defaults: {cloud_config: {users: [root]}}\n",
		"defaults: {cloud_config: {Packages: [htop]}}\n",
		"versions: [{name: v, number: 1, config_drive: azure, image: {url: a, sha256: \"" + testSHA + "\"}}]\n",
		"layouts: [{name: l, disk: {select: largest}, partitions: [{name: p, size: 1GiB, type: linux, filesystem: ext4, mount: data}]}]\n",
	} {
		t.Run(doc, func(t *testing.T) {
			if err := s.Validate(asJSON(t, []byte(doc))); err == nil {
				t.Error("the schema accepts it")
			}
			if _, err := load([]source{{name: "a.yaml", data: []byte(doc)}}); err == nil {
				t.Error("the loader accepts it")
			}
		})
	}
}

// TestSchemaHasEveryField walks the Go types and the schema side by side:
// every yaml key of every type is a property, and no property is not a key.
func TestSchemaHasEveryField(t *testing.T) {
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	defs := root["definitions"].(map[string]any)
	n := 0
	var walk func(path string, typ reflect.Type, s map[string]any)
	walk = func(path string, typ reflect.Type, s map[string]any) {
		if all, ok := s["allOf"].([]any); ok && len(all) == 1 {
			s = all[0].(map[string]any)
		}
		if ref, ok := s["$ref"].(string); ok {
			s = defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
		}
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch typ.Kind() {
		case reflect.Slice:
			walk(path+"[]", typ.Elem(), s["items"].(map[string]any))
		case reflect.Struct:
			props, _ := s["properties"].(map[string]any)
			if s["additionalProperties"] != false {
				t.Errorf("%s: the schema allows unknown keys", path)
			}
			var keys []string
			for _, f := range yamlFields(typ) {
				keys = append(keys, f.key)
				p, ok := props[f.key].(map[string]any)
				if !ok {
					t.Errorf("%s.%s (%s.%s) is not in the schema", path, f.key, typ.Name(), f.sf.Name)
					continue
				}
				n++
				walk(path+"."+f.key, f.sf.Type, p)
			}
			for k := range props {
				if !slices.Contains(keys, k) {
					t.Errorf("%s.%s is in the schema but no field of %s", path, k, typ.Name())
				}
			}
		}
	}
	walk("file", reflect.TypeFor[file](), root)
	if n < 60 {
		t.Errorf("only %d keys walked", n)
	}
}
