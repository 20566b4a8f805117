from services.llm.fake.server import main

main()
