package profiles

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBMCResolvedByKey: a group names the protocol, user and credential,
// each host its own address; render shows where each key came from.
func TestBMCResolvedByKey(t *testing.T) {
	set := mustLoad(t, map[string]string{"a.yaml": "groups:\n  - name: r1\n    match: {labels: {rack: r1}}\n    bmc: {protocol: redfish, username: admin, credential: rack-r1}\n" +
		"hosts:\n  - mac: 52:54:00:00:00:01\n    labels: {rack: r1}\n    bmc: {address: https://10.0.9.1, insecure_tls: true}\n" +
		"  - mac: 52:54:00:00:00:02\n"})
	h, ok := set.Lookup(mustMAC(t, "52:54:00:00:00:01"))
	if !ok {
		t.Fatal("host missing")
	}
	want := &BMC{Protocol: BMCRedfish, Address: "https://10.0.9.1", Username: "admin", Credential: "rack-r1", InsecureTLS: true}
	if diff := cmp.Diff(want, h.BMC); diff != "" {
		t.Errorf("BMC (-want +got):\n%s", diff)
	}
	if got := h.From("bmc.credential"); got != "group r1" {
		t.Errorf("credential from %q", got)
	}
	if got := h.From("bmc.address"); got != "host" {
		t.Errorf("address from %q", got)
	}
	if h2, _ := set.Lookup(mustMAC(t, "52:54:00:00:00:02")); h2.BMC != nil {
		t.Errorf("a host without a bmc got %+v", h2.BMC)
	}
}

func TestBMCErrors(t *testing.T) {
	const host = "hosts:\n  - mac: 52:54:00:00:00:01\n"
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"password in the yaml", host + "    bmc: {protocol: ipmi, address: 10.0.0.1, username: admin, password: hunter2}\n",
			[]string{`a.yaml:3: unknown key "password" in a bmc: a BMC password never goes in the profiles; write it to a file of the appliance's credentials directory and name that file with credential:`}},
		{"bad protocol", host + "    bmc: {protocol: snmp, address: 10.0.0.1, username: a, credential: c}\n",
			[]string{`a.yaml:3:21: bmc protocol: "snmp" is not ipmi or redfish`}},
		{"ipmi url", host + "    bmc: {protocol: ipmi, address: 'http://10.0.0.1', username: a, credential: c}\n",
			[]string{`a.yaml:3:36: bmc address: "http://10.0.0.1": an ipmi address is host or host:port, not a URL`}},
		{"credentials in url", host + "    bmc: {protocol: redfish, address: 'https://root:x@10.0.0.1', username: a, credential: c}\n",
			[]string{`a.yaml:3:39: bmc address: "https://root:xxxxx@10.0.0.1": credentials never go in the address: name a credential file with credential`}},
		{"bad port", host + "    bmc: {protocol: ipmi, address: '10.0.0.1:99999', username: a, credential: c}\n",
			[]string{`a.yaml:3:36: bmc address: "10.0.0.1:99999": port "99999" is not 1 to 65535`}},
		{"credential a path", host + "    bmc: {protocol: ipmi, address: 10.0.0.1, username: a, credential: ../etc/shadow}\n",
			nil},
		{"incomplete", host + "    bmc: {protocol: ipmi, address: 10.0.0.1}\n",
			[]string{`a.yaml:2:10: host 52:54:00:00:00:01: bmc needs username, credential (from the host, a group or the defaults)`}},
		{"redfish keys on ipmi", "defaults: {bmc: {system: s1}}\n" + host + "    bmc: {protocol: ipmi, address: 10.0.0.1, username: a, credential: c}\n",
			[]string{`a.yaml:3:10: host 52:54:00:00:00:01: bmc system and insecure_tls are redfish keys: an ipmi BMC has no use for them`}},
		{"insecure on http", host + "    bmc: {protocol: redfish, address: 'http://10.0.0.1:8000', username: a, credential: c, insecure_tls: true}\n",
			[]string{`a.yaml:2:10: host 52:54:00:00:00:01: bmc insecure_tls has no effect on an http:// address`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := loadErrors(t, map[string]string{"a.yaml": tc.yaml})
			if tc.want == nil {
				if len(got) != 1 || !strings.Contains(got[0], "bmc credential:") {
					t.Errorf("errors = %q, want one about the credential's name", got)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if strings.Contains(strings.Join(got, "\n"), "hunter2") {
				t.Errorf("the password is in the message: %v", got)
			}
		})
	}
}
