from runstack.cli.main import main

main()
