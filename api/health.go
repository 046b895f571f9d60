package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz checks that the hub's dependencies answer: PostgreSQL, Temporal and
// the hub warehouse. It answers 503 naming what is down.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	checks := map[string]func(context.Context) error{
		"postgres":   s.deps.Store.Ping,
		"clickhouse": s.deps.Warehouse.Ping,
		"temporal": func(ctx context.Context) error {
			_, err := s.deps.Temporal.CheckHealth(ctx, nil)
			return err
		},
	}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		results = map[string]string{}
		ready   = true
	)
	for name, check := range checks {
		wg.Go(func() {
			err := check(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				ready = false
				results[name] = err.Error()
				return
			}
			results[name] = "ok"
		})
	}
	wg.Wait()
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, map[string]any{"ready": ready, "checks": results})
}
