/** A bash completion script for the command words: `source <(imgr completion bash)`. */
export function completion(names: readonly string[]): string {
  const first = [...new Set(names.map((n) => n.split(' ')[0] ?? ''))].join(' ');
  const cases = [...new Set(names.map((n) => n.split(' ')[0] ?? ''))]
    .map((w) => `    ${w}) words="${names.filter((n) => n.startsWith(`${w} `)).map((n) => n.split(' ')[1]).join(' ')}" ;;`)
    .join('\n');
  return `# bash completion for imgr
_imgr() {
  local cur=\${COMP_WORDS[COMP_CWORD]} words
  if [ "$COMP_CWORD" -eq 1 ]; then
    words="${first} completion"
  else
    case \${COMP_WORDS[1]} in
${cases}
    esac
  fi
  COMPREPLY=( $(compgen -W "$words --json --wait --help --nats --user" -- "$cur") )
}
complete -F _imgr imgr
`;
}
