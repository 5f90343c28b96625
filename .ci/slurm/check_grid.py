import sys
print(open(sys.argv[1]).read().count("has been submitted with SLURM jobid"), "submissions")
