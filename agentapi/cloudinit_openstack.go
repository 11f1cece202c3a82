package agentapi

import (
	"fmt"
)

// The OpenStack config drive (version 2, "latest"): cloud-init's
// ConfigDrive data source reads it from a FAT or ISO 9660 volume labelled
// config-2, and so does Clear Linux's micro-config-drive, which knows no
// NoCloud.
const openStackDir = "openstack/latest/"

// osMeta is meta_data.json. cloud-init takes the instance id from uuid
// (which it does not parse), the host name from hostname and the default
// user's keys from public_keys; micro-config-drive takes the host name
// and the keys from keys. Nova writes both key lists; so does this.
type osMeta struct {
	UUID       string            `json:"uuid"`
	Hostname   string            `json:"hostname,omitempty"`
	Name       string            `json:"name,omitempty"`
	PublicKeys map[string]string `json:"public_keys,omitempty"`
	Keys       []osKey           `json:"keys,omitempty"`
}

type osKey struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Data string `json:"data"`
}

func (c NoCloud) renderOpenStack() ([]File, error) {
	md := osMeta{UUID: c.InstanceID, Hostname: c.Hostname, Name: c.Hostname}
	for i, k := range c.SSHKeys {
		name := fmt.Sprintf("key-%02d", i+1)
		if md.PublicKeys == nil {
			md.PublicKeys = map[string]string{}
		}
		md.PublicKeys[name] = k
		md.Keys = append(md.Keys, osKey{Name: name, Type: "ssh", Data: k})
	}
	mj, err := marshalJSON(md)
	if err != nil {
		return nil, fmt.Errorf("agentapi: openstack meta_data.json: %w", err)
	}
	// The default user's keys travel in the metadata, as from Nova: in
	// user_data too, both readers would add them twice.
	ud, err := c.userData(nil)
	if err != nil {
		return nil, err
	}
	files := []File{
		{Name: openStackDir + "meta_data.json", Content: mj},
		{Name: openStackDir + "user_data", Content: ud},
	}
	if n := c.Network; n != nil {
		nd, err := n.renderOpenStack()
		if err != nil {
			return nil, fmt.Errorf("agentapi: openstack network_data.json: %w", err)
		}
		files = append(files, File{Name: openStackDir + "network_data.json", Content: nd})
	}
	return files, nil
}
