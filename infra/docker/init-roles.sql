-- compose.yaml: one role and one schema per service, as `lastline-infra up` provisions locally.
CREATE ROLE intake LOGIN PASSWORD 'intake';
CREATE SCHEMA intake AUTHORIZATION intake;
CREATE ROLE matching LOGIN PASSWORD 'matching';
CREATE SCHEMA matching AUTHORIZATION matching;
CREATE ROLE notifications LOGIN PASSWORD 'notifications';
CREATE SCHEMA notifications AUTHORIZATION notifications;
CREATE ROLE reporting LOGIN PASSWORD 'reporting';
CREATE SCHEMA reporting AUTHORIZATION reporting;
