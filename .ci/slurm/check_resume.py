import sys
print("check_resume stub", sys.argv[1:])
