package main

import (
	"maps"
	"slices"
	"testing"
)

// FuzzBootOrder holds the UINT16-array and Boot#### name parsers to round
// trips: what parses encodes back to the same bytes or name.
func FuzzBootOrder(f *testing.F) {
	f.Add([]byte{1, 0, 6, 0, 2, 0}, "Boot0001")
	f.Add([]byte{1}, "Boot00a1")
	f.Add([]byte{}, "BootOrder")
	f.Add([]byte{0xff, 0xff}, "Boot+123")
	f.Fuzz(func(t *testing.T, b []byte, name string) {
		if order, err := parseBootOrder(b); err == nil {
			if again := marshalUint16s(order...); string(again) != string(b) {
				t.Fatalf("BootOrder % x parses to %v, encodes to % x", b, order, again)
			}
		} else if len(b)%2 == 0 {
			t.Fatalf("BootOrder of %d bytes refused: %v", len(b), err)
		}
		if n, ok := parseBootName(name); ok && bootName(n) != name {
			t.Fatalf("%q parses to %d, named %q", name, n, bootName(n))
		}
	})
}

// FuzzSetDiskBoot runs setDiskBoot on the lab's OVMF variables with a
// fuzzed BootOrder, BootCurrent and one fuzzed Boot#### variable. Whatever
// the firmware holds: no panic; an error writes nothing; success leaves
// BootNext naming an entry that parses and boots the loader, and a
// BootOrder that is the old one with that entry in it once.
func FuzzSetDiskBoot(f *testing.F) {
	ovmf := readOVMFVars(f)
	want := diskBoot{Description: "rackboot demo-1.1", ESP: testESP, Loader: `\EFI\BOOT\BOOTX64.EFI`}
	f.Add(ovmf["BootOrder"], []byte{1, 0}, uint16(7), loadOption{Attributes: 1, Description: "rackboot old", FilePath: diskPath(testESP, `\EFI\debian\shimx64.efi`)}.marshal())
	f.Add([]byte{7, 0, 7, 0}, []byte{7, 0}, uint16(7), loadOption{Attributes: 0, Description: "x", FilePath: diskPath(testESP, `\EFI\BOOT\BOOTX64.EFI`)}.marshal())
	f.Add([]byte{1}, []byte{}, uint16(0), []byte{1, 0, 0, 0, 4, 0})
	f.Add([]byte{}, []byte{1, 0, 2, 0}, uint16(0xffff), []byte{})
	f.Fuzz(func(t *testing.T, order, current []byte, n uint16, option []byte) {
		if len(order)+len(current)+len(option) > 2048 {
			return
		}
		v := &fakeVars{vars: maps.Clone(ovmf)}
		v.vars["BootOrder"] = order
		v.vars["BootCurrent"] = current
		v.vars[bootName(n)] = option
		before, _ := parseBootOrder(order)
		ch, err := setDiskBoot(v, want)
		if err != nil {
			if len(v.writes) > 0 {
				t.Fatalf("failed (%v) after writing %v", err, v.writes)
			}
			return
		}
		next, err := parseBootOrder(v.vars["BootNext"])
		if err != nil || len(next) != 1 || next[0] != ch.Entry {
			t.Fatalf("BootNext % x, entry %04X", v.vars["BootNext"], ch.Entry)
		}
		o, err := parseLoadOption(v.vars[bootName(ch.Entry)])
		if err != nil || !bootsLoader(o.FilePath, want.ESP, want.Loader) {
			t.Fatalf("entry %04X does not boot the loader: %+v, %v", ch.Entry, o, err)
		}
		after, err := parseBootOrder(v.vars["BootOrder"])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(after, ch.Order) {
			t.Fatalf("BootOrder %v, reported %v", after, ch.Order)
		}
		if c := count(after, ch.Entry); c != 1 {
			t.Fatalf("entry %04X %d times in %v", ch.Entry, c, after)
		}
		rest := slices.DeleteFunc(slices.Clone(after), func(x uint16) bool { return x == ch.Entry })
		was := slices.DeleteFunc(slices.Clone(before), func(x uint16) bool { return x == ch.Entry })
		if !slices.Equal(rest, was) {
			t.Fatalf("other entries moved: %v became %v", before, after)
		}
	})
}

func count(s []uint16, x uint16) int {
	n := 0
	for _, y := range s {
		if y == x {
			n++
		}
	}
	return n
}
