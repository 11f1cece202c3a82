package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/rackboot/rackboot/profiles"
)

func TestSchemaCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runSchema(context.Background(), nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want, err := profiles.Schema()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Error("rackboot schema does not print profiles.Schema()")
	}
	var v struct {
		Schema string `json:"$schema"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil || v.Schema == "" {
		t.Errorf("not a JSON Schema: %v", err)
	}
	if code := runSchema(context.Background(), []string{"extra"}, &stdout, &stderr); code != 2 {
		t.Errorf("schema extra: exit %d", code)
	}
}
