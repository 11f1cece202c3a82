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
