CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" bigint NOT NULL,
	"actor_kind" text NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"key_id" text,
	"key_prefix" text,
	"key_name" text,
	"changes" text
);
--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "revoked_at" bigint;--> statement-breakpoint
CREATE INDEX "audit_log_at_idx" ON "audit_log" USING btree ("at");--> statement-breakpoint
CREATE INDEX "audit_log_key_id_idx" ON "audit_log" USING btree ("key_id","at");