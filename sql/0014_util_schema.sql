-- 0014 Schema cv_util: helpers shared by functions that run as different roles. cv_client_apply
-- (0010) runs as the signed-in person (SECURITY INVOKER, so row-level security decides each row),
-- and no role has USAGE on cv_sync: a helper it shares with the sync's apply (which runs as the
-- owner) cannot live there. What is here runs as its caller and reads nothing but the catalog;
-- USAGE goes to the roles that call such a function, and each function's EXECUTE is granted where
-- it is defined (sql/functions/).

CREATE SCHEMA cv_util;
GRANT USAGE ON SCHEMA cv_util TO authenticated;
