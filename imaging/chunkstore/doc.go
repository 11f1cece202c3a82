// Package chunkstore is the format of rackboot's chunked images, shared
// by the appliance and the agent: the Index of an image (its
// content-defined chunks, their SHA-256 ids, the whole image's digest),
// the index file, the store's layout (ChunkPath), and Import, which cuts
// an image into chunks and adds the new ones to a store. It links no
// disk code: the appliance's `rackboot image add` and its planner use it
// without go-diskfs; package imaging assembles images from it.
package chunkstore
