package api

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"

	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/ontology"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// Ontology node states in GET /v1/ontology.
const (
	ontologySynced = "synced" // holds the fleet's target (or newer)
	ontologyBehind = "behind" // below the target: caught up when it registers
)

// OntologyNode is one node's line in GET /v1/ontology.
type OntologyNode struct {
	store.ClusterOntology
	State string `json:"state"`
}

// OntologyStatus is the answer to GET /v1/ontology.
type OntologyStatus struct {
	// Version, Checksum and Kinds describe the hub's ontology
	// (schemas/ontology): what a sync pushes.
	Version  int            `json:"version"`
	Checksum string         `json:"checksum"`
	Terms    int            `json:"terms"`
	Kinds    map[string]int `json:"kinds"`
	// Target is the version of the latest ontology sync (0: none yet).
	Target store.OntologyTarget `json:"target"`
	Nodes  []OntologyNode       `json:"nodes"`
	// TermList is the hub's terms, with ?terms=true.
	TermList []ontology.Term `json:"term_list,omitempty"`
}

func (s *Server) ontologyStatus(c echo.Context) error {
	cat, err := s.datasetStore()
	if err != nil {
		return err
	}
	onto, err := ontology.Embedded()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	target, err := cat.OntologyTarget(ctx)
	if err != nil {
		return err
	}
	nodes, err := cat.ClusterOntologies(ctx)
	if err != nil {
		return err
	}
	out := OntologyStatus{Version: onto.Version, Checksum: onto.Checksum, Terms: len(onto.Terms), Kinds: onto.Kinds(),
		Target: target, Nodes: make([]OntologyNode, 0, len(nodes))}
	for _, n := range nodes {
		state := ontologySynced
		if n.Version < target.Version {
			state = ontologyBehind
		}
		out.Nodes = append(out.Nodes, OntologyNode{ClusterOntology: n, State: state})
	}
	switch c.QueryParam("terms") {
	case "", "false":
	case "true":
		out.TermList = onto.Terms
	default:
		return errBadRequest(fmt.Sprintf("terms=%q: use true or false", c.QueryParam("terms")))
	}
	return c.JSON(http.StatusOK, out)
}

// OntologySyncRequest is the optional body of POST /v1/ontology/sync.
type OntologySyncRequest struct {
	// Concurrency bounds how many nodes are synced at once (default
	// SYNDB_SYNC_CONCURRENCY).
	Concurrency int `json:"concurrency"`
}

func (s *Server) startOntologySync(c echo.Context) error {
	var req OntologySyncRequest
	if err := decodeOptionalJSON(c, &req); err != nil {
		return err
	}
	concurrency, err := s.syncConcurrency(req.Concurrency)
	if err != nil {
		return err
	}
	onto, err := ontology.Embedded()
	if err != nil {
		return err
	}
	st, err := workflows.StartOntologySync(c.Request().Context(), s.deps.Temporal,
		workflows.OntologySyncParams{Version: onto.Version, Concurrency: concurrency})
	if err != nil {
		return fmt.Errorf("start ontology sync: %w", err)
	}
	setAuditTarget(c, st.WorkflowID)
	return c.JSON(http.StatusAccepted, SyncStarted{
		WorkflowID: st.WorkflowID,
		RunID:      st.RunID,
		Version:    onto.Version,
		StatusURL:  s.cfg.PublicURL + "/v1/ontology/sync/" + url.PathEscape(st.WorkflowID),
		UIURL:      s.uiURL(st.WorkflowID, st.RunID),
		Joined:     st.Joined,
	})
}

// OntologySyncStatus is the answer to GET /v1/ontology/sync/{workflow_id}.
type OntologySyncStatus struct {
	RunStatus
	workflows.OntologySyncResult
}

// ontologySyncIDRe matches the IDs of ontology syncs and catch-ups.
var ontologySyncIDRe = regexp.MustCompile(`^ontology-(sync|catchup-[a-z0-9][a-z0-9-]{0,62})-v[0-9]{1,9}$`)

func (s *Server) ontologySyncStatus(c echo.Context) error {
	id := c.Param("id")
	if !ontologySyncIDRe.MatchString(id) {
		return errNotFound(fmt.Sprintf("no ontology sync %q: IDs look like %s", id, workflows.OntologySyncID(1)))
	}
	var out OntologySyncStatus
	st, err := s.runStatus(c.Request().Context(), id, "ontology sync", &out.OntologySyncResult)
	if err != nil {
		return err
	}
	out.RunStatus = st
	if out.Nodes == nil {
		out.Nodes = []workflows.NodeOntologyResult{}
	}
	return c.JSON(http.StatusOK, out)
}
