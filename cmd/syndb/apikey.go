package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/store"
)

// createdByCLI is the CreatedBy of the keys this command makes.
const createdByCLI = "cli"

func apikeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Manage API keys: create, list, revoke, rotate"}
	cmd.AddCommand(apikeyCreateCmd(), apikeyListCmd(), apikeyRevokeCmd(), apikeyRotateCmd())
	return cmd
}

// withStore runs fn with the hub's PostgreSQL store (SYNDB_POSTGRES_DSN).
func withStore(ctx context.Context, fn func(*store.Store) error) error {
	cfg, err := config.Load[config.Postgres]()
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.DSN)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

func apikeyCreateCmd() *cobra.Command {
	var spec store.KeySpec
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an API key and print it (it cannot be shown again); a reader unless --role says otherwise",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if store.RoleRank(spec.Role) == 0 {
				return fmt.Errorf("--role %q: use one of %s", spec.Role, strings.Join(store.Roles, ", "))
			}
			if err := config.CheckKeyTTL("--ttl", spec.TTL); err != nil {
				return err
			}
			spec.CreatedBy = createdByCLI
			return withStore(cmd.Context(), func(st *store.Store) error {
				key, rec, err := st.NewAPIKey(cmd.Context(), spec)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), key)
				fmt.Fprintf(cmd.ErrOrStderr(), "created key %d %q (%s) for account %s, %s; it is shown only this once\n",
					rec.ID, rec.Name, rec.Role, rec.Account, expiry(rec.ExpiresAt))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&spec.Name, "name", "", "a name for the key (required)")
	cmd.Flags().StringVar(&spec.Account, "account", "default", "the account that owns the key")
	cmd.Flags().StringVar(&spec.Role, "role", store.RoleReader, "reader (read and query), operator (also syncs, jobs, uploads, sweeps) or admin (also enrolment, revocation, keys, any job)")
	cmd.Flags().DurationVar(&spec.TTL, "ttl", 0, fmt.Sprintf("how long the key lives, %s..%s, e.g. 720h (default: it does not expire)",
		config.MinKeyTTL, config.MaxKeyTTL))
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func apikeyListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every API key: id, name, account, role, prefix, created, created by, expires, last used, state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), func(st *store.Store) error {
				keys, err := st.APIKeys(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					if err := enc.Encode(keys); err != nil {
						return fmt.Errorf("write api keys: %w", err)
					}
					return nil
				}
				return writeKeyTable(cmd.OutOrStdout(), keys)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the records as JSON")
	return cmd
}

func apikeyRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key: every API refuses it within seconds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := keyIDArg(args[0])
			if err != nil {
				return err
			}
			return withStore(cmd.Context(), func(st *store.Store) error {
				k, err := st.RevokeAPIKey(cmd.Context(), id)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "revoked key %d %q (%s, account %s)\n", k.ID, k.Name, k.Role, k.Account)
				return nil
			})
		},
	}
}

func apikeyRotateCmd() *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "rotate ID",
		Short: "Issue a new key in place of key ID (same name, account and role) and print it; the old key works until --grace ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := keyIDArg(args[0])
			if err != nil {
				return err
			}
			if err := config.CheckRotationGrace("--grace", grace); err != nil {
				return err
			}
			return withStore(cmd.Context(), func(st *store.Store) error {
				key, rec, old, err := st.RotateAPIKey(cmd.Context(), id, grace, createdByCLI)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), key)
				fmt.Fprintf(cmd.ErrOrStderr(), "key %d %q replaces key %d, which works until %s; the new key is %s and is shown only this once\n",
					rec.ID, rec.Name, old.ID, stamp(old.ExpiresAt), expiry(rec.ExpiresAt))
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", store.DefaultRotationGrace, fmt.Sprintf("how long the old key keeps working, 0..%s", config.MaxRotationGrace))
	return cmd
}

// keyIDArg parses a key ID argument.
func keyIDArg(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("key ID %q: want the number `syndb apikey list` shows", s)
	}
	return id, nil
}

// writeKeyTable prints keys as a table, one line a key.
func writeKeyTable(out io.Writer, keys []store.APIKey) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tACCOUNT\tROLE\tPREFIX\tCREATED\tCREATED BY\tEXPIRES\tLAST USED\tSTATE")
	for _, k := range keys {
		by := k.CreatedBy
		if by == "" {
			by = "-"
		}
		state := k.State
		if k.ReplacedBy != nil {
			state += fmt.Sprintf(" (by key %d)", *k.ReplacedBy)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Account, k.Role, k.Prefix, stamp(&k.CreatedAt),
			by, stamp(k.ExpiresAt), stamp(k.LastUsedAt), state)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write api keys: %w", err)
	}
	return nil
}

// stamp prints a time to the second in UTC, "-" for none.
func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func expiry(t *time.Time) string {
	if t == nil {
		return "no expiry"
	}
	return "expires " + stamp(t)
}
