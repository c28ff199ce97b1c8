-- Neovim's own LSP client (Debian 12's Neovim 0.7.2, headless) runs the Build code lens of a Nix
-- file. Started by test/server/neovim.test.ts as `nvim --headless -u init.lua`; the server, its
-- settings and the file come in NB_* variables, and what happened is written as JSON to NB_RESULT.
-- The server is configured by the README's own Neovim snippet (section "Other editors").
local result_file = os.getenv('NB_RESULT')
local progress = {}

local finished = false
local function finish(value)
  finished = true
  value.progress = progress
  vim.fn.writefile({ vim.fn.json_encode(value) }, result_file)
  vim.cmd('qall!')
end

-- The README's snippet (its server path and settings replaced by the test's).
dofile(os.getenv('NB_SNIPPET'))

-- Record the work-done progress Neovim receives, and keep its own handling of it.
local progress_handler = vim.lsp.handlers['$/progress']
vim.lsp.handlers['$/progress'] = function(err, result, ctx, config)
  table.insert(progress, { kind = result.value.kind, title = result.value.title, message = result.value.message })
  return progress_handler(err, result, ctx, config)
end
-- Neovim's code lens runner answers a workspace/executeCommand through this handler.
vim.lsp.handlers['workspace/executeCommand'] = function(err, result)
  finish({ result = result, err = err and err.message })
end
-- Five lenses share the line: choose Build, as a user would in the menu codelens.run() shows.
vim.ui.select = function(items, opts, on_choice)
  for i, item in ipairs(items) do
    if opts.format_item(item) == 'Build' then return on_choice(item, i) end
  end
  finish({ err = 'no Build lens among the choices' })
end

-- After start-up, once filetype detection is on (Neovim turns it on after this file).
local function run()
  vim.cmd('edit ' .. vim.fn.fnameescape(os.getenv('NB_FILE')))
  assert(vim.wait(60000, function()
    local client = vim.lsp.get_active_clients()[1]
    return client ~= nil and client.name == 'nix-builders' and client.initialized == true
  end, 100), 'the language server did not start (see :checkhealth and the LSP log)')
  -- The snippet's on_attach asked for the lenses: wait for them.
  local line
  assert(vim.wait(120000, function()
    for _, lens in ipairs(vim.lsp.codelens.get(0)) do
      if lens.command and lens.command.title == 'Build' then line = lens.range.start.line end
    end
    return line ~= nil
  end, 500), 'no Build code lens arrived')
  vim.api.nvim_win_set_cursor(0, { line + 1, 0 })
  vim.lsp.codelens.run()
  -- A server that does not run the command never answers: say so instead of waiting forever.
  if not vim.wait(240000, function() return finished end, 100) then finish({ err = 'no answer to the Build lens\'s command' }) end
end
vim.api.nvim_create_autocmd('VimEnter', {
  -- nested: the file's FileType event (which starts the server) fires inside this one.
  nested = true,
  callback = function()
    local ok, problem = pcall(run)
    if not ok then finish({ err = tostring(problem) }) end
  end,
})
