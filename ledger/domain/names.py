"""The names runledger shares across modules and processes: run types, property and tag keys,
environment variables and configuration file names.

A leaf module (it imports nothing), so that every layer -- domain, persistence, SDK, CLI, and the
processes a submitted script runs in -- reads one spelling of each name.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------- run types
EXPERIMENT_RUN_TYPE = "experiment_run"  # start_logging() and child runs (the seed SDK's name)
SCRIPT_RUN_TYPE = "azureml.scriptrun"  # submitted script runs (the seed SDK's name)

# ---------------------------------------------------------------------------------- tags
BATCH_CHILD_NUMBER_TAG = "azureml.batch_child_number"  # create_children(count=N)

# ---------------------------------------------------------------------------------- properties
# Recorded on a script run (properties are immutable: each is set once).
PROP_SCRIPT = "runledger.script"
PROP_LOG_FILE = "runledger.log_file"  # recorded by older versions only: never opened
PROP_CONTROL_LOG_FILE = "runledger.control_log_file"  # likewise
PROP_SUPERVISOR_PID = "runledger.supervisor_pid"
PROP_SUPERVISOR_HOST = "runledger.supervisor_host"
PROP_SCRIPT_PID = "runledger.script_pid"
# When the supervisor and the script started (Unix seconds, psutil's create_time): a pid is only
# signalled while it still names the process that started then.
PROP_SUPERVISOR_STARTED = "runledger.supervisor_started"
PROP_SCRIPT_STARTED = "runledger.script_started"
PROP_RUNCONFIG = "runledger.runconfig"  # `runledger run submit-script` records the runconfig
# Recorded on a submitted run: what it ran (get_details()["runDefinition"]) and with which
# registered environment (Run.get_environment()).
PROP_RUN_DEFINITION = "runledger.run_definition"
PROP_ENVIRONMENT_NAME = "runledger.environment_name"
PROP_ENVIRONMENT_VERSION = "runledger.environment_version"

# The names the seed SDK gives a script run's logs in get_details()["logFiles"], by property.
LOG_FILE_NAMES = ((PROP_CONTROL_LOG_FILE, "azureml-logs/60_control_log.txt"),
                  (PROP_LOG_FILE, "azureml-logs/70_driver_log.txt"))
DRIVER_LOG_NAME = "70_driver_log.txt"
CONTROL_LOG_NAME = "60_control_log.txt"

# ---------------------------------------------------------------------------------- environment
# Settings (read once per workspace by ledger.config.LedgerSettings).
STORE_ENV = "RUNLEDGER_STORE"
CONFIG_ENV = "RUNLEDGER_CONFIG"
USER_ENV = "RUNLEDGER_USER"
FLUSH_INTERVAL_ENV = "RUNLEDGER_FLUSH_INTERVAL"
METRIC_BATCH_ENV = "RUNLEDGER_METRIC_BATCH"
SQLITE_SYNCHRONOUS_ENV = "RUNLEDGER_SQLITE_SYNCHRONOUS"
# The protocol between a submitting process, a script's supervisor and the script.
RUN_ID_ENV = "RUNLEDGER_RUN_ID"
EXPERIMENT_ENV = "RUNLEDGER_EXPERIMENT"
WORKSPACE_ENV = "RUNLEDGER_WORKSPACE"
SUPERVISED_RUN_ENV = "RUNLEDGER_SUPERVISED_RUN"  # set in the supervisor's own environment

# ---------------------------------------------------------------------------------- files
CONFIG_FILE_NAMES = ("runledger.json", ".runledger/config.json")
# The Azure ML SDK's own configuration files (``az ml folder attach`` writes the second one);
# searched after runledger's, and only taken when they hold an Azure ML key (see ledger.config).
AZURE_CONFIG_FILE_NAMES = ("config.json", ".azureml/config.json")
AZURE_CONFIG_KEYS = ("subscription_id", "resource_group", "workspace_name")
LOCAL_IDENTITY = "local"  # subscription, resource group and location when none is configured
DEFAULT_STORE_DIR = ".runledger"
DEFAULT_DB_NAME = "ledger.db"
