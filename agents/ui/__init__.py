"""The UI server (seed 002's UI Server): a web UI and a REST API over the audit agent and SMF."""
