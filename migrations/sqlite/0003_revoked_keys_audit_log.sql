CREATE TABLE `audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` integer NOT NULL,
	`actor_kind` text NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`key_id` text,
	`key_prefix` text,
	`key_name` text,
	`changes` text
);
--> statement-breakpoint
CREATE INDEX `audit_log_at_idx` ON `audit_log` (`at`);--> statement-breakpoint
CREATE INDEX `audit_log_key_id_idx` ON `audit_log` (`key_id`,`at`);--> statement-breakpoint
ALTER TABLE `api_keys` ADD `revoked_at` integer;