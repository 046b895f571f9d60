package workers

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/p2p"
)

// RunRelay runs `syndb relay` until ctx ends: a publicly reachable peer of
// the federation that serves the DHT (bootstrap) and relays connections
// (circuit relay v2) for hubs and nodes behind NAT. It holds no data and
// needs no database.
func RunRelay(ctx context.Context, cfg config.Relay, log *slog.Logger) error {
	key, err := p2p.LoadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return err
	}
	psk, err := config.DecodePSK(cfg.PSK)
	if err != nil {
		return err
	}
	boot, err := p2p.ParseAddrInfos(cfg.Bootstrap)
	if err != nil {
		return fmt.Errorf("SYNDB_P2P_BOOTSTRAP: %w", err)
	}
	h, err := p2p.NewHost(p2p.HostConfig{
		Key: key, Listen: cfg.Listen, PSK: psk, Reachability: cfg.Reachability, PreferTCP: cfg.PreferTCP(),
		RelayService: true, RelayLimit: p2p.RelayLimit{Duration: cfg.MaxCircuitDuration, Data: cfg.MaxCircuitData},
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := h.Close(); cerr != nil {
			log.Warn("close libp2p host", "err", cerr)
		}
	}()
	disc, err := p2p.StartDiscovery(ctx, h, p2p.DiscoveryConfig{Bootstrap: boot, Server: true, MDNS: cfg.MDNS}, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := disc.Close(); cerr != nil {
			log.Warn("stop discovery", "err", cerr)
		}
	}()
	for _, a := range h.Addrs() {
		log.Info("relay listening", "addr", fmt.Sprintf("%s/p2p/%s", a, h.ID()))
	}
	log.Info("relay running", "peer_id", h.ID(), "max_circuit_duration", cfg.MaxCircuitDuration,
		"max_circuit_data", cfg.MaxCircuitData, "bootstrap", len(boot))
	<-ctx.Done()
	log.Info("relay stopping")
	return nil
}
