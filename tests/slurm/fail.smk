# Test-only workflow for tests/test_slurm.py: one rule that fails, so the run must end with an error
# (the plugin must see the job FAILED through squeue instead of waiting for it forever).


rule fail_on_purpose:
    output:
        "never_written.txt",
    log:
        "logs/fail_on_purpose.log",
    threads: 1
    resources:
        mem_mb=100,
        runtime=2,
    shell:
        "echo 'failing on purpose' > {log}; exit 3"
