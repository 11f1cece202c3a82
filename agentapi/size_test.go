package agentapi

import (
	"encoding/json"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr bool
	}{
		{in: "rest", want: Rest},
		{in: "REST", want: Rest},
		{in: "4096", want: 4096},
		{in: "512M", want: 512 * mib},
		{in: "512MiB", want: 512 * mib},
		{in: "512mib", want: 512 * mib},
		{in: "1G", want: gib},
		{in: "1.5GiB", want: 3 * gib / 2},
		{in: "2T", want: 2 * tib},
		{in: "10KB", want: 10_000},
		{in: "1GB", want: 1_000_000_000},
		{in: " 8 MiB ", want: 8 * mib},
		{in: "100B", want: 100},
		{in: "", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "-1G", wantErr: true},
		{in: "1X", wantErr: true},
		{in: "NaNG", wantErr: true},
		{in: "Inf", wantErr: true},
		{in: "9223372036854775807K", wantErr: true},
		{in: "1e30", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseSize(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestSizeStringAndJSON(t *testing.T) {
	tests := []struct {
		size Size
		str  string
		json string
	}{
		{Rest, "rest", `"rest"`},
		{512 * mib, "512MiB", "536870912"},
		{gib, "1GiB", "1073741824"},
		{1000, "1000B", "1000"},
		{0, "0B", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.str, func(t *testing.T) {
			if got := tt.size.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			b, err := json.Marshal(tt.size)
			if err != nil || string(b) != tt.json {
				t.Errorf("Marshal = %s, %v; want %s", b, err, tt.json)
			}
			var back Size
			if err := json.Unmarshal(b, &back); err != nil || back != tt.size {
				t.Errorf("Unmarshal(%s) = %d, %v", b, back, err)
			}
			// The String form parses back too.
			if p, err := ParseSize(tt.str); err != nil || p != tt.size {
				t.Errorf("ParseSize(%q) = %d, %v", tt.str, p, err)
			}
		})
	}
	var s Size
	for _, bad := range []string{`-5`, `true`, `"lots"`, `1.5`} {
		if err := json.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("Unmarshal(%s) succeeded, want error", bad)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB",
		512 * mib: "512MiB", 1000204886016: "931.5GiB", 3 * tib: "3TiB",
	} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzParseSize checks that sizes from plans never parse to a negative
// value other than Rest and that String output parses back.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"rest", "512M", "1.5GiB", "10KB", "0", "-1", "1e9G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 && v != Rest {
			t.Fatalf("ParseSize(%q) = %d", s, v)
		}
		back, err := ParseSize(v.String())
		if err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d; String %q parses to %d, %v", s, v, v.String(), back, err)
		}
	})
}
