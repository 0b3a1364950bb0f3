ALTER TABLE "api_keys" ADD COLUMN "token_limit_week" bigint;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "allowed_models" jsonb;