-- Creates one database per Mercato service on the first start of the compose PostgreSQL.
-- The image runs this as POSTGRES_USER (mercato, a superuser), so mercato owns them all.
-- deployments/deps.sh creates the same set on servers it did not start with compose.
CREATE DATABASE mercato_user;
CREATE DATABASE mercato_product;
CREATE DATABASE mercato_order;
CREATE DATABASE mercato_payment;
CREATE DATABASE mercato_process;
