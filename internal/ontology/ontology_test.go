package ontology_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/ontology"
	"github.com/syndb/federation/internal/wire"
)

func TestEmbeddedOntology(t *testing.T) {
	t.Parallel()
	o, err := ontology.Embedded()
	require.NoError(t, err)
	require.GreaterOrEqual(t, o.Version, 1)
	require.GreaterOrEqual(t, len(o.Terms), 36, "a few dozen terms")
	kinds := o.Kinds()
	for _, k := range []string{"neurotransmitter", "compartment", "brain_region"} {
		require.GreaterOrEqual(t, kinds[k], 9, k)
	}
	req := o.Request()
	require.NoError(t, req.Validate(), "nodes accept what the hub sends")
	require.Equal(t, wire.OntologyChecksum(req.GetTerms()), o.Checksum)
	require.Len(t, req.GetTerms(), len(o.Terms))

	// Every SynDB compartment table names a compartment term, by label or synonym.
	names := map[string]bool{}
	for _, term := range o.Terms {
		if term.Kind == "compartment" {
			names[term.Label] = true
			for _, s := range term.Synonyms {
				names[s] = true
			}
		}
	}
	for _, table := range []string{"neuron", "axon", "dendrite", "dendritic_spine", "pre_synapse", "post_synapse",
		"synapse", "vesicle", "mitochondria", "endoplasmic_reticulum"} {
		require.True(t, names[table], "no compartment term for table %s", table)
	}
}

func TestRequestIsACopy(t *testing.T) {
	t.Parallel()
	o, err := ontology.Embedded()
	require.NoError(t, err)
	req := o.Request()
	req.Terms[0].Label = "changed"
	require.NotEqual(t, "changed", o.Terms[0].Label)
	require.NoError(t, o.Request().Validate())
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, raw, want string }{
		{"no version", `{"terms":[{"kind":"compartment","id":"a","label":"A"}]}`, "must be positive"},
		{"no terms", `{"version":1,"terms":[]}`, "terms"},
		{"unknown kind", `{"version":1,"terms":[{"kind":"organ","id":"a","label":"A"}]}`, "unknown kind"},
		{"no label", `{"version":1,"terms":[{"kind":"compartment","id":"a"}]}`, "lacks an ID or label"},
		{"twice", `{"version":1,"terms":[{"kind":"compartment","id":"a","label":"A"},{"kind":"compartment","id":"a","label":"B"}]}`, "appears twice"},
		{"unknown parent", `{"version":1,"terms":[{"kind":"compartment","id":"a","label":"A","parent":"b"}]}`, "unknown parent"},
		{"parent of another kind", `{"version":1,"terms":[{"kind":"compartment","id":"a","label":"A","parent":"b"},{"kind":"brain_region","id":"b","label":"B"}]}`, "unknown parent"},
		{"cycle", `{"version":1,"terms":[{"kind":"compartment","id":"a","label":"A","parent":"b"},{"kind":"compartment","id":"b","label":"B","parent":"a"}]}`, "own ancestor"},
		{"unknown field", `{"version":1,"terms":[],"extra":true}`, "unknown field"},
		{"two values", `{"version":1,"terms":[{"kind":"compartment","id":"a","label":"A"}]} {}`, "more than one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ontology.Parse([]byte(tc.raw))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestChecksumIgnoresOrder(t *testing.T) {
	t.Parallel()
	a, err := ontology.Parse([]byte(`{"version":1,"terms":[{"kind":"compartment","id":"a","label":"A"},{"kind":"compartment","id":"b","label":"B","parent":"a","synonyms":["bee"]}]}`))
	require.NoError(t, err)
	b, err := ontology.Parse([]byte(`{"version":1,"terms":[{"kind":"compartment","id":"b","label":"B","parent":"a","synonyms":["bee"]},{"kind":"compartment","id":"a","label":"A"}]}`))
	require.NoError(t, err)
	require.Equal(t, a.Checksum, b.Checksum)
	c, err := ontology.Parse([]byte(strings.Replace(`{"version":1,"terms":[{"kind":"compartment","id":"a","label":"A"}]}`, `"A"`, `"A2"`, 1)))
	require.NoError(t, err)
	require.NotEqual(t, a.Checksum, c.Checksum)
}
