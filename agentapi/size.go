package agentapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a size in bytes. The special value Rest, written "rest", means all
// the space left after the other partitions.
//
// In JSON a Size is a number of bytes or a string accepted by ParseSize.
type Size int64

// Rest is the size of a partition that takes the remaining space.
const Rest Size = -1

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	tib = 1 << 40
)

// sizeUnits maps suffixes to multipliers. Single letters and IEC suffixes
// are binary, as in sgdisk ("+512M"); two-letter SI suffixes are decimal, as
// in parted and on disk labels. Matching is case-insensitive.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first so "MiB" is not read as "B".
	{"kib", kib}, {"mib", mib}, {"gib", gib}, {"tib", tib},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", kib}, {"m", mib}, {"g", gib}, {"t", tib},
	{"b", 1},
}

// ParseSize parses "rest", a plain number of bytes, or a number with a unit:
// K, M, G, T, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers
// of 1000). Fractions are allowed with a unit ("1.5G") and rounded down to
// whole bytes.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "rest") {
		return Rest, nil
	}
	lower := strings.ToLower(t)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.suffix) {
			mult = u.mult
			lower = strings.TrimSpace(strings.TrimSuffix(lower, u.suffix))
			break
		}
	}
	if lower == "" {
		return 0, fmt.Errorf("agentapi: size %q: missing number", s)
	}
	if n, err := strconv.ParseInt(lower, 10, 64); err == nil {
		if n < 0 || (n > 0 && mult > math.MaxInt64/n) {
			return 0, fmt.Errorf("agentapi: size %q out of range", s)
		}
		return Size(n * mult), nil
	}
	f, err := strconv.ParseFloat(lower, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("agentapi: size %q: not a number of bytes", s)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("agentapi: size %q out of range", s)
	}
	return Size(v), nil
}

// String returns "rest" or the size in the largest binary unit that divides
// it exactly ("512MiB", "1GiB", "1000B").
func (s Size) String() string {
	switch {
	case s == Rest:
		return "rest"
	case s < 0:
		return fmt.Sprintf("invalid(%d)", int64(s))
	case s == 0:
		return "0B"
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", tib}, {"GiB", gib}, {"MiB", mib}, {"KiB", kib}} {
		if int64(s)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(s)/u.mult, u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(s))
}

// MarshalJSON writes Rest as "rest" and any other size as a number of bytes.
func (s Size) MarshalJSON() ([]byte, error) {
	if s == Rest {
		return []byte(`"rest"`), nil
	}
	return strconv.AppendInt(nil, int64(s), 10), nil
}

// UnmarshalJSON accepts a number of bytes or a string for ParseSize.
func (s *Size) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		v, err := ParseSize(str)
		if err != nil {
			return err
		}
		*s = v
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("agentapi: size must be a number of bytes or a string, got %s", b)
	}
	if n < 0 {
		return fmt.Errorf("agentapi: negative size %d", n)
	}
	*s = Size(n)
	return nil
}

// HumanBytes formats n for messages: "931.5GiB", "512MiB", "1000B".
func HumanBytes(n int64) string {
	if n < kib {
		return fmt.Sprintf("%dB", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, u := float64(n)/kib, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + units[u]
}
