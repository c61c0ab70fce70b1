"""Pipeline stages that chain several steps (the stage layer grows here)."""
