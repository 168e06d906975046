from dtm_cli.main import main

main()
