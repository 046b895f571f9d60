// Package ontology reads the hub's versioned ontology: the controlled
// vocabularies (neurotransmitters, compartments, brain regions) the hub
// pushes to every node with OntologySync. The file lives in
// schemas/ontology/ontology.json; a change to its terms ships with a new
// version, since nodes refuse a known version with other content.
package ontology

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/syndb/federation/internal/wire"
	"github.com/syndb/federation/schemas"
)

// Term is one controlled-vocabulary term. Parent names a term of the same
// kind ("" for a root).
type Term struct {
	Kind     string   `json:"kind"`
	ID       string   `json:"id"`
	Label    string   `json:"label"`
	Parent   string   `json:"parent"`
	Synonyms []string `json:"synonyms"`
}

// Ontology is one version of the vocabularies.
type Ontology struct {
	Version     int    `json:"version"`
	Description string `json:"description,omitempty"`
	Terms       []Term `json:"terms"`
	// Checksum is the SHA-256 over the terms in a canonical order
	// (wire.OntologyChecksum): what a node's ledger records.
	Checksum string `json:"checksum"`
}

// Parse reads an ontology file and checks it: a positive version, terms of
// known kinds with IDs and labels, each ID once per kind, and parents that
// exist and form no cycle.
func Parse(raw []byte) (*Ontology, error) {
	var o Ontology
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return nil, fmt.Errorf("parse ontology: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse ontology: more than one JSON value")
	}
	for i := range o.Terms {
		if o.Terms[i].Synonyms == nil {
			o.Terms[i].Synonyms = []string{}
		}
	}
	o.Checksum = wire.OntologyChecksum(o.protoTerms())
	if err := o.Request().Validate(); err != nil {
		return nil, fmt.Errorf("ontology version %d: %w", o.Version, err)
	}
	if err := o.checkCycles(); err != nil {
		return nil, fmt.Errorf("ontology version %d: %w", o.Version, err)
	}
	return &o, nil
}

// checkCycles refuses a term that is its own ancestor.
func (o *Ontology) checkCycles() error {
	parent := make(map[[2]string]string, len(o.Terms))
	for _, t := range o.Terms {
		parent[[2]string{t.Kind, t.ID}] = t.Parent
	}
	for _, t := range o.Terms {
		seen := map[string]bool{t.ID: true}
		for p := t.Parent; p != ""; p = parent[[2]string{t.Kind, p}] {
			if seen[p] {
				return fmt.Errorf("%s term %q is its own ancestor", t.Kind, t.ID)
			}
			seen[p] = true
		}
	}
	return nil
}

func (o *Ontology) protoTerms() []*wire.OntologyTerm {
	out := make([]*wire.OntologyTerm, len(o.Terms))
	for i, t := range o.Terms {
		out[i] = &wire.OntologyTerm{Kind: t.Kind, Id: t.ID, Label: t.Label, ParentId: t.Parent, Synonyms: append([]string(nil), t.Synonyms...)}
	}
	return out
}

// Request returns the OntologySync message carrying this version: a new
// message on every call, since messages are mutable.
func (o *Ontology) Request() *wire.OntologySyncRequest {
	return &wire.OntologySyncRequest{Version: int32(o.Version), Checksum: o.Checksum, Terms: o.protoTerms()}
}

// Kinds counts the terms of each kind.
func (o *Ontology) Kinds() map[string]int {
	out := map[string]int{}
	for _, t := range o.Terms {
		out[t.Kind]++
	}
	return out
}

// Embedded returns the hub's ontology, schemas/ontology/ontology.json,
// parsed once.
var Embedded = sync.OnceValues(func() (*Ontology, error) { return Parse(schemas.OntologyJSON) })
