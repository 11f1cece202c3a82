package imaging

import (
	"errors"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
)

func TestPlace(t *testing.T) {
	g512, err := newGeometry(1*gib, 512)
	if err != nil {
		t.Fatal(err)
	}
	g4k, err := newGeometry(1*gib, 4096)
	if err != nil {
		t.Fatal(err)
	}
	p := func(name string, size agentapi.Size) agentapi.Partition {
		return agentapi.Partition{Name: name, Type: "linux", Size: size}
	}
	type ext struct {
		Name       string
		Index      int
		Start, End uint64
		Kept       bool
	}
	tests := []struct {
		name    string
		g       geometry
		parts   []agentapi.Partition
		from    uint64
		first   int
		keep    map[string]*gpt.Partition
		want    []ext
		wantErr error
	}{
		{
			name:  "512 sequential with rest last",
			g:     g512,
			parts: []agentapi.Partition{p("a", mib), p("b", 100*mib), p("c", agentapi.Rest)},
			first: 1,
			want: []ext{
				{"a", 1, 2048, 4095, false},
				{"b", 2, 4096, 208895, false},
				{"c", 3, 208896, g512.last, false},
			},
		},
		{
			name:  "4096 rest in the middle leaves room, aligned",
			g:     g4k,
			parts: []agentapi.Partition{p("a", 10*mib), p("b", agentapi.Rest), p("c", 8*mib+1)},
			first: 1,
			want: []ext{
				{"a", 1, 256, 2815, false},
				// c needs 8 MiB + 1 byte = 2049 sectors, 9 MiB aligned: b ends 9 MiB before the last usable MiB boundary.
				{"b", 2, 2816, alignDown(g4k.last+1-9*256, 256) - 1, false},
				{"c", 3, alignDown(g4k.last+1-9*256, 256), alignDown(g4k.last+1-9*256, 256) + 2049 - 1, false},
			},
		},
		{
			name:  "odd sizes round up to sectors and next start aligns",
			g:     g512,
			parts: []agentapi.Partition{p("a", 1000), p("b", mib)},
			first: 1,
			want:  []ext{{"a", 1, 2048, 2049, false}, {"b", 2, 4096, 6143, false}},
		},
		{
			name:  "after an image, numbered on",
			g:     g512,
			parts: []agentapi.Partition{p("config", 16*mib)},
			from:  100000,
			first: 3,
			want:  []ext{{"config", 3, 100352, 100352 + 32768 - 1, false}},
		},
		{
			name:  "kept partition stays, rest fills up to it",
			g:     g512,
			parts: []agentapi.Partition{p("a", mib), p("b", agentapi.Rest), p("data", 200*mib)},
			first: 1,
			keep:  map[string]*gpt.Partition{"data": {Start: 1000000, End: 1000000 + 409599, GUID: "G", Attributes: 4}},
			want: []ext{
				{"a", 1, 2048, 4095, false},
				{"b", 2, 4096, 999999, false},
				{"data", 3, 1000000, 1409599, true},
			},
		},
		{
			name:  "partitions after a kept one flow behind it",
			g:     g512,
			parts: []agentapi.Partition{p("data", 10*mib), p("c", mib)},
			first: 1,
			keep:  map[string]*gpt.Partition{"data": {Start: 8192, End: 8192 + 20479}},
			want:  []ext{{"data", 1, 8192, 28671, true}, {"c", 2, 28672, 30719, false}},
		},
		{
			name:    "grown partition would overlap kept one",
			g:       g512,
			parts:   []agentapi.Partition{p("a", 10*mib), p("data", mib)},
			first:   1,
			keep:    map[string]*gpt.Partition{"data": {Start: 8192, End: 10239}},
			wantErr: ErrLayoutChanged,
		},
		{
			name:    "image reaches into kept partition",
			g:       g512,
			parts:   []agentapi.Partition{p("data", mib)},
			from:    9000,
			first:   3,
			keep:    map[string]*gpt.Partition{"data": {Start: 8192, End: 10239}},
			wantErr: ErrLayoutChanged,
		},
		{
			name:    "too big",
			g:       g512,
			parts:   []agentapi.Partition{p("a", 512*mib), p("b", 512*mib)},
			first:   1,
			wantErr: ErrDiskTooSmall,
		},
		{
			name:    "no room left for rest",
			g:       g512,
			parts:   []agentapi.Partition{p("a", 1023*mib), p("b", agentapi.Rest)},
			first:   1,
			wantErr: ErrDiskTooSmall,
		},
		{
			name:    "rest cannot leave room for what follows",
			g:       g512,
			parts:   []agentapi.Partition{p("a", agentapi.Rest), p("b", 1023*mib)},
			first:   1,
			wantErr: ErrDiskTooSmall,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			slots, err := place(tt.parts, tt.g, tt.from, tt.first, tt.keep)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("place() = %v, want %v", err, tt.wantErr)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []ext
			for _, s := range slots {
				got = append(got, ext{s.Name, s.index, s.start, s.end, s.kept})
				if !s.kept && s.start%tt.g.align() != 0 {
					t.Errorf("%s starts at %d, not 1 MiB aligned", s.Name, s.start)
				}
				if s.kept && (s.guid != tt.keep[s.Name].GUID || s.attributes != tt.keep[s.Name].Attributes|PreservedAttribute) {
					t.Errorf("%s lost its GUID or attributes, or was not marked preserved: %#x", s.Name, s.attributes)
				}
				if !s.kept && (s.attributes&PreservedAttribute != 0) != s.Preserve {
					t.Errorf("%s: attributes %#x, preserve %v", s.Name, s.attributes, s.Preserve)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("place() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeptPartitions(t *testing.T) {
	g, _ := newGeometry(gib, 512)
	existing := &gpt.Table{Partitions: []*gpt.Partition{
		{Index: 1, Name: "esp", Type: gpt.EFISystemPartition, Start: 2048, End: 4095},
		{Index: 2, Name: "data", Type: gpt.LinuxFilesystem, Start: 4096, End: 4096 + 20479, GUID: "D"},
		{Index: 3, Name: "twice", Type: gpt.LinuxFilesystem, Start: 30000, End: 30999},
		{Index: 4, Name: "twice", Type: gpt.LinuxFilesystem, Start: 40000, End: 40999},
	}}
	tests := []struct {
		name     string
		parts    []agentapi.Partition
		wantKeep []string
		wantErr  error
	}{
		{name: "same name and size", parts: []agentapi.Partition{{Name: "data", Type: "linux", Size: 10 * mib, Preserve: true}}, wantKeep: []string{"data"}},
		{name: "rest keeps any size", parts: []agentapi.Partition{{Name: "data", Type: "linux", Size: agentapi.Rest, Preserve: true}}, wantKeep: []string{"data"}},
		{name: "not preserved", parts: []agentapi.Partition{{Name: "data", Type: "linux", Size: 10 * mib}}},
		{name: "new preserved partition", parts: []agentapi.Partition{{Name: "home", Type: "linux", Size: mib, Preserve: true}}},
		{name: "size changed", parts: []agentapi.Partition{{Name: "data", Type: "linux", Size: 11 * mib, Preserve: true}}, wantErr: ErrLayoutChanged},
		{name: "type changed", parts: []agentapi.Partition{{Name: "data", Type: "swap", Size: 10 * mib, Preserve: true}}, wantErr: ErrLayoutChanged},
		{name: "ambiguous", parts: []agentapi.Partition{{Name: "twice", Type: "linux", Size: agentapi.Rest, Preserve: true}}, wantErr: ErrLayoutChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep, err := keptPartitions(tt.parts, existing, g)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("keptPartitions() = %v, want %v", err, tt.wantErr)
			}
			var names []string
			for n := range keep {
				names = append(names, n)
			}
			if diff := cmp.Diff(tt.wantKeep, names); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
		})
	}
	if keep, err := keptPartitions([]agentapi.Partition{{Name: "data", Type: "linux", Size: agentapi.Rest, Preserve: true}}, nil, g); err != nil || len(keep) != 0 {
		t.Errorf("no table: %v, %v", keep, err)
	}
}
