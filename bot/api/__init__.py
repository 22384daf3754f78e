"""The integration API (`/api/v1`, SPEC §5c): keys, router, schemas, routes, service."""
