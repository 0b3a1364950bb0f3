ALTER TABLE `api_keys` ADD `token_limit_week` integer;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `allowed_models` text;