package rack

import (
	"errors"
	"fmt"
	"testing"
)

func TestLeaves(t *testing.T) {
	a, b := errors.New("a missing"), errors.New("b missing")
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"plain", a, 1},
		{"wrapped join", fmt.Errorf("lab: this host cannot run the lab: %w", errors.Join(a, b)), 2},
		{"wrapped plain", fmt.Errorf("x: %w", a), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := leaves(tt.err); len(got) != tt.want {
				t.Errorf("leaves(%v) = %v, want %d errors", tt.err, got, tt.want)
			}
		})
	}
}

// TestProblem: the two checkers' "not root" lines are one problem; two
// missing commands are two.
func TestProblem(t *testing.T) {
	root1 := errors.New("not root: namespaces, bridges and taps need CAP_NET_ADMIN")
	root2 := errors.New("not root (mmdebstrap installs the packages in a chroot)")
	if problem(root1) != problem(root2) || problem(root1) != "not root" {
		t.Errorf("problem(%q) = %q, problem(%q) = %q; want both \"not root\"", root1, problem(root1), root2, problem(root2))
	}
	a, b := errors.New("command zstd missing (package zstd)"), errors.New("command mmdebstrap missing (package mmdebstrap)")
	if problem(a) == problem(b) {
		t.Errorf("two missing commands are one problem: %q", problem(a))
	}
}
